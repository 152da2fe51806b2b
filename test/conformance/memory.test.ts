/**
 * The conformance table (`cases.ts`) against the memory store. The memory store decides at the
 * `now` it is given, so the harness's clock is a no-op.
 */
import { MemoryStore } from '../../src/memory/memoryStore.js';
import { runConformance } from './runConformance.js';

runConformance('memory store conformance', async () => ({
  store: new MemoryStore(),
  setTime: () => {},
  close: async () => {},
}));
