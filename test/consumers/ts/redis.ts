// The Redis entry's types, with ioredis installed (node16 and nodenext only: ioredis' own
// declarations need @types/node).
import { Redis } from 'ioredis';
import type { Store } from 'tollgate';
import { redisStore, type RedisStoreOptions } from 'tollgate/redis';

export function store(url: string): Store {
  const options: RedisStoreOptions = {
    client: new Redis(url, { lazyConnect: true }),
    prefix: 'app:',
    onUnavailable: 'fail-closed',
    timeout: '500ms',
  };
  return redisStore(options);
}
