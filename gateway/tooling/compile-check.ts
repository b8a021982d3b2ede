import { compileConfig, type CompiledGateway } from '../config/compile.ts';
import { loadConfigFile, type LoadedConfig } from '../config/load.ts';
import { createLogger } from '../ops/logger.ts';
import { createMetrics } from '../ops/metrics.ts';
import { createMemoryStore } from '../store/memory.ts';

export interface CompileCheck {
  loaded: LoadedConfig;
  compiled: CompiledGateway;
  /** Releases what compiling built (agents, policy resources, the private store). */
  release(): Promise<void>;
}

/**
 * Compiles a config file exactly as `hcgw start` would, off to the side: a silent logger, its own memory
 * store, nothing listening. A config that would not start throws the ConfigError listing every mistake.
 * `hcgw validate` and `hcgw diff` both go through here, so they judge a file the same way.
 */
export async function compileCheck(file: string): Promise<CompileCheck> {
  const loaded = await loadConfigFile(file);
  const store = createMemoryStore();
  let compiled: CompiledGateway;
  try {
    compiled = await compileConfig(loaded, { logger: createLogger({ silent: true }), metrics: createMetrics(), store });
  } catch (err) {
    await store.close();
    throw err;
  }
  return {
    loaded,
    compiled,
    async release() {
      await compiled.close();
      await store.close();
    },
  };
}
