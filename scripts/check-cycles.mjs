// Fails when a package's source has an import cycle that is not in the baseline (issue 12).
// Type-only imports count too: a cycle of types is still a knot a reader has to untie.
// Usage: node scripts/check-cycles.mjs            check every packages/*/src
//        node scripts/check-cycles.mjs --update   rewrite the baseline (after removing a cycle)
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import madge from 'madge';

const root = new URL('..', import.meta.url).pathname;
const baselinePath = join(root, 'scripts/import-cycles.baseline.json');
const dirs = readdirSync(join(root, 'packages'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => join(root, 'packages', d.name, 'src'));

const result = await madge(dirs, {
  baseDir: join(root, 'packages'),
  fileExtensions: ['ts', 'tsx'],
  excludeRegExp: [/\.d\.ts$/, /node_modules/, /\/dist\//],
  tsConfig: join(root, 'tsconfig.base.json'),
  detectiveOptions: { ts: { skipTypeImports: false }, tsx: { skipTypeImports: false } },
});
// One cycle, whatever file madge entered it from: rotated to start at its smallest path (a new
// module that imports into a known cycle must not make that cycle look new).
const canonical = (parts) => {
  let min = 0;
  for (let i = 1; i < parts.length; i++) if (parts[i] < parts[min]) min = i;
  return [...parts.slice(min), ...parts.slice(0, min)].join(' > ');
};
const found = result.circular().map(canonical);
const baseline = JSON.parse(readFileSync(baselinePath, 'utf8'));
const known = new Set(baseline.cycles.map((c) => canonical(c.cycle.split(' > '))));

if (process.argv.includes('--update')) {
  const why = new Map(baseline.cycles.map((c) => [c.cycle, c.why]));
  baseline.cycles = found.map((cycle) => ({ cycle, why: why.get(cycle) ?? 'TODO: say why it stays' }));
  writeFileSync(baselinePath, `${JSON.stringify(baseline, null, 2)}\n`);
  console.log(`baseline: ${found.length} cycle(s)`);
  process.exit(0);
}

const added = found.filter((c) => !known.has(c));
const gone = [...known].filter((c) => !found.includes(c));
for (const c of gone) console.log(`import cycle gone (remove it from the baseline): ${c}`);
if (added.length > 0) {
  for (const c of added) console.error(`new import cycle: ${c}`);
  console.error(
    `\n${added.length} new import cycle(s). Break them (a narrow interface in a leaf module, see docs/ARCHITECTURE.md), do not add them to ${baselinePath}.`,
  );
  process.exit(1);
}
console.log(`import cycles: ${found.length} known, none new (${dirs.length} packages)`);
