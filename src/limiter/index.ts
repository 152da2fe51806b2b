/** The pure decision core: plain data in, plain data out, `now` passed in. */
export { decide, CONCURRENCY, type Decision, type Granted, type Refused } from './decide.js';
export { advance, initialState, isIdle, rebase, remapMarks } from './advance.js';
export { refund, settle, release } from './settle.js';
export { read } from './read.js';
export { compilePolicy, compileCost } from './validate.js';
export { parseDuration, formatMs } from './units.js';
export type * from './types.js';
