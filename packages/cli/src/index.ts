import { readFileSync } from 'node:fs';
import { type LogLevel, logLevels, passwordFormats } from '@breakwater/broker';
import { type GamedayRunFlags, listScenarios, runGameday } from '@breakwater/gameday';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  type AdminFlags,
  authnStatus,
  bypassAuthn,
  type CommandIo,
  DEFAULT_ADMIN_URL,
  DEFAULT_TOKEN_FILE,
  nodeDrain,
  nodeStatus,
  type PasswdFlags,
  passwd,
  restoreAuthn,
} from './admin-commands.js';
import { registerAuthzCommands } from './commands/authz.js';
import { registerCampaignCommands } from './commands/campaign.js';
import type { ApiCommandContext } from './commands/common.js';
import { registerConfigCommands } from './commands/config.js';
import { registerDeviceCommands } from './commands/devices.js';
import { registerExportCommand } from './commands/export.js';
import { registerIncidentCommands } from './commands/incident.js';
import { registerIntegrationCommands } from './commands/integration.js';
import { registerRevocationCommands } from './commands/revocations.js';
import { registerTokenCommands } from './commands/tokens.js';
import { runUp, type UpIo } from './up.js';
import type { UpFlags } from './up-config.js';

export { runUp, type UpIo } from './up.js';
export { portFlags, resolveUpConfig, type UpConfig, type UpFlags } from './up-config.js';

/** Commander argument parser for a TCP port: an integer 0–65535 (0 = any free port). */
function parsePort(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    throw new InvalidArgumentError('must be an integer between 0 and 65535 (0 picks a free port).');
  }
  return Number(value);
}

/** Commander argument parser for a positive integer (a cost or count). */
function parseCount(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('must be a positive integer.');
  return Number(value);
}

function packageVersion(): string {
  // src/ and dist/ are both one level below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/**
 * The `breakwater` command. Returns the exit code (bin/breakwater.js sets it) instead of calling
 * `process.exit`, so it can run in-process in tests.
 */
export async function main(
  argv: readonly string[] = process.argv,
  io?: Partial<UpIo> & Partial<Pick<CommandIo, 'stdin' | 'env'>>,
): Promise<number> {
  const stdout = io?.stdout ?? process.stdout;
  const stderr = io?.stderr ?? process.stderr;
  const commandIo: CommandIo = {
    stdout,
    stderr,
    stdin: io?.stdin ?? process.stdin,
    env: io?.env ?? process.env,
  };
  let exitCode = 0;

  const program = new Command('breakwater')
    .description('Breakwater: an MQTT broker and fleet control plane that keeps fleet incidents bounded.')
    .version(packageVersion())
    .exitOverride()
    .configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('up')
    .description(
      'run the broker: MQTT (TCP, WebSocket, TLS), /metrics, /healthz, /readyz, and the fleet control plane API',
    )
    .option('--config <file>', 'YAML configuration file (flags override its values)')
    .option('--host <address>', 'bind address for every listener and HTTP (default: 0.0.0.0)')
    .option('--mqtt-port <n>', 'MQTT over TCP port (default: 1883; 0 = any free port)', parsePort)
    .option('--ws-port <n>', 'MQTT over WebSocket port, path /mqtt (default: 8083)', parsePort)
    .option('--mqtts-port <n>', 'MQTT over TLS port (needs a tls listener in --config)', parsePort)
    .option('--wss-port <n>', 'MQTT over secure WebSocket port (needs a wss listener in --config)', parsePort)
    .option(
      '--http-port <n>',
      'HTTP port for /metrics, /healthz, /readyz and the control plane /api (default: 8080)',
      parsePort,
    )
    .option('--data-dir <dir>', 'directory for persistent state (default: ./data)')
    .addOption(new Option('--log-level <level>', 'log level (default: info)').choices(logLevels))
    .option(
      '--cluster <urls>',
      'join a cluster of brokers over NATS JetStream: comma-separated NATS URLs (sets cluster.servers)',
    )
    .action(async (options: UpFlags & { logLevel?: LogLevel }) => {
      exitCode = await runUp(options, {
        stdout,
        stderr,
        ...(io?.shutdownSignal ? { shutdownSignal: io.shutdownSignal } : {}),
      });
    });

  const listener = program
    .command('listener')
    .description('break-glass on a running broker (admin API on its HTTP port)');
  const adminOptions = (cmd: Command) =>
    cmd
      .option('--url <url>', 'broker HTTP base URL', DEFAULT_ADMIN_URL)
      .option(
        '--token-file <file>',
        `admin token file (default: $BREAKWATER_ADMIN_TOKEN, else ${DEFAULT_TOKEN_FILE})`,
      );
  adminOptions(
    listener
      .command('bypass-authn <listener>')
      .description(
        'admit clients on <listener> without their auth backend, each confined to its own topics, until --ttl ends it',
      )
      .requiredOption('--ttl <duration>', 'how long, e.g. 30m, 2h (at most 24h)')
      .requiredOption('--reason <text>', 'why (written to the audit log)'),
  ).action(async (name: string, options: AdminFlags & { ttl: string; reason: string }) => {
    exitCode = await bypassAuthn(name, options, commandIo);
  });
  adminOptions(
    listener.command('restore-authn <listener>').description('end a bypass now: authentication is back on'),
  ).action(async (name: string, options: AdminFlags) => {
    exitCode = await restoreAuthn(name, options, commandIo);
  });
  adminOptions(
    listener.command('authn <listener>').description('show the authn chain and any bypass in force'),
  ).action(async (name: string, options: AdminFlags) => {
    exitCode = await authnStatus(name, options, commandIo);
  });

  // Node drain (issue 15): take this node out of service at a bounded eviction rate.
  const node = program.command('node').description('this broker node: drain it out of service');
  adminOptions(
    node
      .command('drain')
      .description(
        'readiness false, stop accepting, evict clients at --rate (MQTT 5: DISCONNECT 0x9C + Server Reference)',
      )
      .option('--rate <n>', 'clients evicted per second (default: cluster.drainRatePerSec, 500)')
      .option(
        '--server-reference <host:port>',
        'where MQTT 5 clients should go (default: another live node)',
      ),
  ).action(async (options: AdminFlags & { rate?: string; serverReference?: string }) => {
    exitCode = await nodeDrain(options, commandIo);
  });
  adminOptions(node.command('status').description('drain progress')).action(async (options: AdminFlags) => {
    exitCode = await nodeStatus(options, commandIo);
  });

  // Game days (issue 6): scored incident rehearsals against a simulated fleet.
  const gameday = program
    .command('gameday')
    .description('rehearse fleet incidents: a simulated fleet, injected faults, a scored report');
  gameday
    .command('list')
    .description('the scenarios and their full-scale size')
    .action(() => {
      exitCode = listScenarios({ stdout, stderr });
    });
  gameday
    .command('run <scenario>')
    .description('run a scenario; exit code 0 when every expectation passes, 1 otherwise')
    .option('--devices <n>', 'simulated devices (default: the scenario full scale)')
    .option('--target <url>', 'test this broker (mqtt://host:port) instead of an in-process one')
    .option('--metrics <url>', "the target's Prometheus endpoint (default http://<host>:8080/metrics)")
    .option('--duration <time>', 'run length, e.g. 90s, 5m; fault times and delays scale with it')
    .option('--time-scale <x>', 'override the time scale (default: duration / full-scale duration)')
    .option('--report <dir>', 'where report.json, summary.md and report.html go')
    .addOption(
      new Option('--protections <mode>', 'off: the scenario weakened configuration').choices(['on', 'off']),
    )
    .addOption(
      new Option(
        '--firmware <kind>',
        'device reconnect firmware: fleet (SDK backoff) or naive (fixed 1 s)',
      ).choices(['fleet', 'naive']),
    )
    .addOption(
      new Option('--cache <state>', 'auth cache when the storm hits: cold (first connect) or warm').choices([
        'cold',
        'warm',
      ]),
    )
    .option(
      '--matrix [cells]',
      'run the matrix protections x firmware x auth cache: every cell, or e.g. on/naive/warm,off/*/cold',
    )
    .addOption(
      new Option('--scale <size>', 'ci: the small test scale; full (default)').choices(['ci', 'full']),
    )
    .option('--seed <n>', 'random seed of the fleet')
    .action(async (name: string, options: GamedayRunFlags) => {
      exitCode = await runGameday(name, options, { stdout, stderr });
    });

  program
    .command('passwd <file> <user>')
    .description(
      'add or update <user> in a password file (scrypt by default); the password comes from stdin or a prompt',
    )
    .addOption(
      new Option('--format <format>', 'hash format; mosquitto = $7$ (PBKDF2-SHA512, Mosquitto 2 reads it)')
        .choices([...passwordFormats])
        .default('scrypt'),
    )
    .option('--cost <n>', "bcrypt cost or PBKDF2 iterations (default: the format's)", parseCount)
    .action(async (file: string, user: string, options: PasswdFlags) => {
      exitCode = await passwd(file, user, commandIo, options);
    });

  registerExportCommand(program, { stdout, stderr }, (code) => {
    exitCode = code;
  });

  // Control-plane API commands (issue 5): one registration call per command group.
  const api: ApiCommandContext = {
    io: commandIo,
    setExitCode: (code) => {
      exitCode = code;
    },
  };
  registerDeviceCommands(program, api);
  registerTokenCommands(program, api);
  registerRevocationCommands(program, api);
  registerConfigCommands(program, api);
  registerCampaignCommands(program, api);
  registerIncidentCommands(program, api);
  registerIntegrationCommands(program, api);
  registerAuthzCommands(program, api);

  try {
    await program.parseAsync(argv as string[]);
  } catch (err) {
    // exitOverride turns commander's process.exit into this throw; it has already printed the
    // message (e.g. "option '--mqtt-port <n>' argument 'abc' is invalid").
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
  return exitCode;
}
