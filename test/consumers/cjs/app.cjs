// A CommonJS app: require() of the ES module package (Node >= 20.19).
const { createLimiterSystem, isTollgateError, QueueFullError } = require('tollgate');
const { redisStore } = require('tollgate/redis');

async function main() {
  const system = createLimiterSystem();
  const limiter = system.limiter('api', { limits: [{ limit: 2, interval: '1m' }] });
  const results = [];
  for (let i = 0; i < 3; i++) results.push((await limiter.tryAcquire('user-1')).ok);
  await system.close();
  console.log(
    JSON.stringify({
      results,
      redisStore: typeof redisStore,
      errors: isTollgateError(new QueueFullError(1)),
    }),
  );
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
