/**
 * Hostile input for the boundary fuzz (test/faults/boundaryFuzz.test.ts, #12 item 9): what each
 * kind of field accepts, written here apart from src (an oracle that shares no code with the
 * checks it judges), and arbitraries that take a valid call and replace one argument or one
 * option field, at any depth, with a value that field must refuse.
 */
import fc from 'fast-check';

/** The longest duration tollgate accepts: 366 days (src/limiter/units.ts says so too). */
const MAX_MS = 366 * 86_400_000;
/** The most units one cost may name in one dimension (2^40). */
export const MAX_UNITS = 2 ** 40;
const PER_UNIT: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isPositiveInt = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) > 0;

function isDuration(v: unknown): boolean {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 1 && v <= MAX_MS;
  if (typeof v !== 'string') return false;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(v);
  if (m === null) return false;
  const ms = Number(m[1]) * PER_UNIT[m[2]!]!;
  const whole = Math.round(ms);
  return Math.abs(ms - whole) <= 1e-6 && whole >= 1 && whole <= MAX_MS;
}

/**
 * Kind names what a field accepts. The predicate of each answers "is this value valid here?";
 * the fuzz only ever sends a field a value its kind's predicate calls invalid.
 */
export const KINDS = {
  /** A positive safe integer: limit, burst, concurrency, probes, thresholds. */
  posInt: isPositiveInt,
  /** 1 ms to 366 days, as ms or a string like '1.5s'. */
  duration: isDuration,
  /** An acquire's timeout: 0, or a duration. */
  timeout: (v: unknown) => v === 0 || isDuration(v),
  /** Any string (keys). */
  string: (v: unknown) => typeof v === 'string',
  /** A non-empty string (names, dimensions). */
  name: (v: unknown) => typeof v === 'string' && v.length > 0,
  /** A whole number of units, 0 to 2^40 (a cost's amount). */
  units: (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_UNITS,
  /** Any finite number (priority). */
  finite: (v: unknown) => typeof v === 'number' && Number.isFinite(v),
  /** A share above 0 and at most 1 (failure rate, insurance fraction). */
  fraction: (v: unknown) => typeof v === 'number' && v > 0 && v <= 1,
  /** A finite number from 1 (backoffFactor). */
  factor: (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 1,
  /** Waiters per key: a whole number from 0, or Infinity. */
  maxQueue: (v: unknown) => v === Infinity || (Number.isSafeInteger(v) && (v as number) >= 0),
  /** Keys a limiter keeps (maxKeys): a whole number from 1, or Infinity. */
  maxKeys: (v: unknown) => v === Infinity || (Number.isSafeInteger(v) && (v as number) >= 1),
  /** A whole number from 0 (replicas). */
  count: (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0,
  /** Keys in a stats stream's top: 0 to 1000. */
  top: (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 1000,
  /** A plain object (options, costs, policies). */
  object: isObject,
  /** An array of strings (a policy's dimensions, as the LLM helpers take them). */
  dimensions: (v: unknown) => Array.isArray(v) && v.every((d) => typeof d === 'string'),
  /** An array (limits). */
  array: (v: unknown) => Array.isArray(v),
  /** A function (run's fn, settle, classify, fetch…). */
  fn: (v: unknown) => typeof v === 'function',
  /** An AbortSignal, or what passes for one. */
  signal: (v: unknown) =>
    isObject(v) && typeof v.aborted === 'boolean' && typeof v.addEventListener === 'function',
  /** A Clock { now, setTimeout, clearTimeout }. */
  clock: (v: unknown) =>
    isObject(v) &&
    typeof v.now === 'function' &&
    typeof v.setTimeout === 'function' &&
    typeof v.clearTimeout === 'function',
  /** A finite number (a virtual clock's start or target). */
  instant: (v: unknown) => typeof v === 'number' && Number.isFinite(v),
  /** A finite number of 0 or more (a virtual clock's step). */
  step: (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0,
  /** A Redis key prefix: a string without braces. */
  prefix: (v: unknown) => typeof v === 'string' && !/[{}]/.test(v),
  /** An ioredis client, as far as the store checks. */
  client: (v: unknown) => isObject(v) && typeof v.defineCommand === 'function',
  /** A string or a function (limitedFetch's key). */
  keyOrFn: (v: unknown) => typeof v === 'string' || typeof v === 'function',
  /** A function or an observer { next } (inspect). */
  inspector: (v: unknown) =>
    typeof v === 'function' || (isObject(v) && typeof v.next === 'function'),
  /** A store: the methods the system calls, `sync` and `name`. */
  store: (v: unknown) =>
    isObject(v) &&
    ['decide', 'settle', 'cancel', 'release', 'read', 'reset', 'close'].every(
      (m) => typeof v[m] === 'function',
    ) &&
    typeof v.sync === 'boolean' &&
    typeof v.name === 'string',
} satisfies Record<string, (v: unknown) => boolean>;

/** An enum kind: one of `values`. */
export const oneOf =
  (...values: readonly unknown[]) =>
  (v: unknown): boolean =>
    values.includes(v);

/** A field that takes any value at all (a provider's JSON body): never given a hostile one. */
export const ANY = (_v: unknown): boolean => true;

/** What a field accepts: a predicate of validity. */
export type Accepts = (v: unknown) => boolean;

/**
 * Schema describes the fields of a call's arguments (or of one option object): per field, what it
 * accepts, whether it may be left out, and the schema of what it holds (an object's fields, or an
 * array's elements).
 */
export interface Field {
  readonly accepts: Accepts;
  readonly optional?: boolean;
  /** The fields of the object this field holds. */
  readonly fields?: Schema;
  /** The schema of every element of the array this field holds. */
  readonly elements?: Field;
}
export type Schema = Readonly<Record<string, Field>>;

/** A place in a valid value where a hostile value may go: its path, and what the field takes. */
export interface Slot {
  readonly path: readonly (string | number)[];
  readonly field: Field;
}

/**
 * slotsOf lists every field of `value` that `schema` describes, at every depth: present fields,
 * the elements of arrays, and optional fields left out (a hostile value may be added there).
 */
export function slotsOf(schema: Schema, value: unknown, at: (string | number)[] = []): Slot[] {
  const out: Slot[] = [];
  const obj = value as Record<string, unknown>;
  for (const [name, field] of Object.entries(schema)) {
    const path = [...at, Array.isArray(value) ? Number(name) : name];
    if (field.accepts === ANY) continue; // takes anything: nothing to refuse there
    out.push({ path, field });
    const v = obj[name];
    if (v === undefined) continue;
    if (field.fields !== undefined) out.push(...slotsOf(field.fields, v, path));
    if (field.elements !== undefined && Array.isArray(v)) {
      v.forEach((el, i) => {
        out.push({ path: [...path, i], field: field.elements! });
        if (field.elements!.fields !== undefined)
          out.push(...slotsOf(field.elements!.fields, el, [...path, i]));
      });
    }
  }
  return out;
}

/** Whether `v` is invalid for `field`: undefined only where the field may not be left out. */
export const refuses = (field: Field, v: unknown): boolean =>
  v === undefined ? field.optional !== true : !field.accepts(v);

/** A deep copy of plain data, functions and class instances shared (a signal, a clock). */
function copy<T>(v: T): T {
  if (Array.isArray(v)) return v.map(copy) as T;
  const proto: unknown = isObject(v) ? Object.getPrototypeOf(v) : undefined;
  if (proto === Object.prototype || proto === null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as object)) out[k] = copy(x);
    return out as T;
  }
  return v;
}

/** `value` with the field at `path` set to `hostile`, the original untouched. */
export function replaced<T>(value: T, path: readonly (string | number)[], hostile: unknown): T {
  const out = copy(value);
  let node = out as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = hostile;
  return out;
}

/** A hostile symbol, shared so that a shrunk counterexample prints the same. */
const SYMBOL = Symbol('hostile');

/** The values every field is tried with first (issue #12's list, and its cousins). */
export const LISTED: readonly unknown[] = [
  NaN,
  Infinity,
  -Infinity,
  -1,
  0,
  -0,
  0.5,
  1e-10,
  2 ** 53 + 1,
  2 ** 31,
  -(2 ** 31),
  1e21,
  '1',
  '',
  ' ',
  '0s',
  '-1s',
  '0ms',
  '1.0005s',
  '367d',
  '1e3ms',
  'abc',
  'Infinity',
  'NaN',
  '__proto__',
  {},
  [],
  [1],
  null,
  undefined,
  true,
  false,
  SYMBOL,
  10n,
  -1n,
  () => 1,
  Object.create(null),
  new Date(0),
  { valueOf: () => 5 },
  { aborted: false },
  { aborted: 'no', addEventListener() {} },
  new Map(),
  Promise.resolve(1),
];

/** Any value at all, weighted toward the listed ones and toward near-valid numbers and strings. */
export const anything: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...LISTED) },
  { weight: 2, arbitrary: fc.double() },
  { weight: 2, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 31 }) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 53, 2 ** 53 + 2, Number.MAX_VALUE, 2 ** 40 + 1) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.oneof(fc.integer({ min: -100, max: 10_000 }), fc.double({ noNaN: true })),
        fc.constantFrom('ms', 's', 'm', 'h', 'd', 'sec', 'y', '', ' s', 'S'),
      )
      .map(([n, u]) => `${n}${u}`),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
  { weight: 1, arbitrary: fc.bigInt() },
  {
    weight: 1,
    arbitrary: fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
  },
  { weight: 1, arbitrary: fc.array(fc.integer(), { maxLength: 2 }) },
);

/** A value `field` must refuse. */
export const hostileFor = (field: Field): fc.Arbitrary<unknown> =>
  anything.filter((v) => refuses(field, v));

/** One mutation of a valid value: the slot replaced and the hostile value put there. */
export interface Mutation<T> {
  readonly valid: T;
  readonly slot: Slot;
  readonly hostile: unknown;
  readonly mutated: T;
}

/**
 * mutationOf takes a valid value from `valid` and replaces one field that `schema` describes, at
 * any depth (an argument, an option, an option of an option, an element of an array), with a value
 * that field refuses.
 */
export function mutationOf<T>(valid: fc.Arbitrary<T>, schema: Schema): fc.Arbitrary<Mutation<T>> {
  return valid.chain((v) => {
    const slots = slotsOf(schema, v);
    return fc.constantFrom(...slots).chain((slot) =>
      hostileFor(slot.field).map((hostile) => ({
        valid: v,
        slot,
        hostile,
        mutated: replaced(v, slot.path, hostile),
      })),
    );
  });
}

/** How a mutation reads in a counterexample: the path and the hostile value. */
export function describeMutation(m: { slot: Slot; hostile: unknown }): string {
  return `${m.slot.path.join('.')} = ${fc.stringify(m.hostile)} (${typeof m.hostile})`;
}
