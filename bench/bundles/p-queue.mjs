// The same memory-only app with p-queue: one queue capped per interval, one task.
import PQueue from 'p-queue';

const queue = new PQueue({ intervalCap: 10, interval: 1000 });
await queue.add(() => {});
