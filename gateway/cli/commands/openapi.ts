import { writeFile } from 'node:fs/promises';
import { stringify as stringifyYaml } from 'yaml';
import { loadConfigFile } from '../../config/load.ts';
import { parseOptions } from '../command.ts';
import { validateFile } from './validate.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { out: { type: 'string', short: 'o' }, server: { type: 'string' } }, true);
  const file = positionals[0] ?? 'routes.yaml';
  // A document for partners must describe a config that would start: check it exactly as validate does.
  if ((await validateFile(file, { quiet: true })) !== 0) return 1;
  const { config, hash } = await loadConfigFile(file);
  const { buildOpenApi } = await import('../openapi.ts');
  const doc = buildOpenApi(config, file, { version: hash, serverUrl: values.server });
  const text = values.out && /\.ya?ml$/.test(values.out) ? stringifyYaml(doc) : `${JSON.stringify(doc, null, 2)}\n`;
  if (values.out) await writeFile(values.out, text);
  else process.stdout.write(text);
  return 0;
}
