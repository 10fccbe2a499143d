/**
 * Keyv's official storage-adapter suite (@keyv/test-suite) against KeyvSilt: the default suite
 * (API, values, namespaces) and the iterator suite. Run by keyv-suite.test.ts through vitest:
 *   node node_modules/vitest/vitest.mjs run --config test/keyv/vitest.config.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import keyvTestSuite, { keyvIteratorTests } from '@keyv/test-suite';
import Keyv, { type KeyvOptions, type KeyvStoreAdapter } from 'keyv';
import * as Vitest from 'vitest';
import { open, type Store } from '../../src/index.js';
import { KeyvSilt, withIterator } from '../../src/keyv/index.js';

const directory = mkdtempSync(join(tmpdir(), 'silt-keyv-suite-'));
let store: Store | undefined;

Vitest.beforeAll(async () => {
  store = await open(directory);
});

Vitest.afterAll(async () => {
  await store?.close();
  rmSync(directory, { recursive: true, force: true });
});

// One adapter per Keyv instance (Keyv 5 sets `namespace` on its adapter), all over one store.
const adapter = (): KeyvSilt => new KeyvSilt(store as Store);

keyvTestSuite(Vitest, Keyv, adapter);

/** Keyv 5 attaches `iterator()` only for its own adapters; `withIterator` attaches it for KeyvSilt. */
class IterableKeyv extends Keyv {
  constructor(storeOrOptions?: KeyvStoreAdapter | KeyvOptions | Map<unknown, unknown>, options?: Omit<KeyvOptions, 'store'>) {
    super(storeOrOptions, options);
    withIterator(this);
  }
}

keyvIteratorTests(Vitest, IterableKeyv, adapter);
