import { MemoryStorage } from '../../src/storage/memory.js';
import { runStorageContract } from './contract.js';

runStorageContract('memory', async () => {
  const storage = new MemoryStorage();
  await storage.open();
  return {
    storage,
    // Memory is "durable" as soon as a mutation is recorded: the same instance is the only view.
    durable: async () => storage,
    reopen: null,
    cleanup: () => storage.close(),
  };
});
