#!/usr/bin/env node
// Thin launcher. The package imports itself by name, so the `exports` map picks the build:
// dist/ normally (built by `npm install` via the root `prepare`), src/ under `--conditions=source`
// (with `--import tsx`, as the tests run it).
import { main } from '@breakwater/cli';

main(process.argv).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`breakwater: ${err?.message ?? err}\n`);
    process.exitCode = 1;
  },
);
