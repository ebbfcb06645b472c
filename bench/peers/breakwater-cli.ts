/**
 * Runs the real `breakwater` CLI from TypeScript source (no build needed): the same `main()` that
 * packages/cli/bin/breakwater.js calls from dist/. Usage: breakwater-cli.ts up --mqtt-port ...
 */
import { main } from '@breakwater/cli';

main(process.argv).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`breakwater: ${(err as Error)?.message ?? err}\n`);
    process.exitCode = 1;
  },
);
