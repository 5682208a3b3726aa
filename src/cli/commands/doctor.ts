// `barman-cloud doctor` (umbrella only): check a setup end to end, in order — configuration and
// credentials, the bucket, a probe object's round trip, the catalog, then PostgreSQL — and print
// one finding per check. Exit codes: src/cli/doctor/report.ts exitCode().
import { CliError } from '../../errors.js';
import { ServerLayout } from '../../catalog/layout.js';
import { openObjectStore } from '../../storage/config.js';
import type { ObjectStore } from '../../storage/types.js';
import type { CommandContext, CommandModule } from '../context.js';
import { resolveContextStore, storeUrl } from '../open-store.js';
import type { ResolvedStore } from '../store.js';
import type { ArchiveTarget } from '../doctor/archive-command.js';
import { exitCode, fail, formatConsole, formatJson, ok, type CheckResult } from '../doctor/report.js';
import {
  catalogSummary, classifyStoreError, describeStore, probeRoundTrip, resolvedCredentialSource, storeFailureAdvice,
} from '../doctor/store-checks.js';

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function run(ctx: CommandContext<'doctor'>): Promise<number> {
  const opts = ctx.args.options;
  const serverName = ctx.args.positionals.server_name;
  const rawUrl = storeUrl(ctx);
  const json = opts.format === 'json';
  const results: CheckResult[] = [];
  // Console lines are printed as each check ends (a slow check shows where it is); JSON at the end.
  const report = (r: CheckResult) => {
    results.push(r);
    if (!json) ctx.stdout(formatConsole([r]));
  };

  let resolved: ResolvedStore | undefined;
  const storeUsable = await storeChecks(ctx, rawUrl, serverName, report, (r) => (resolved = r));

  if (!opts['no-postgres']) {
    const target: ArchiveTarget = {
      destinationUrl: rawUrl,
      serverName,
      cloudProvider: opts['cloud-provider'],
      // As the store resolution chose it (the flag, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
      endpointUrl: resolved?.config.provider === 'aws-s3' ? resolved.config.endpointUrl : opts['endpoint-url'],
    };
    await postgresChecks(ctx, target, report);
  }

  if (json) ctx.stdout(formatJson(results));
  return exitCode(results, !storeUsable);
}

/** Checks 1–4. Returns false when the store could not be used at all (exit 2). */
async function storeChecks(
  ctx: CommandContext<'doctor'>, rawUrl: string, serverName: string, report: (r: CheckResult) => void,
  onResolved: (r: ResolvedStore) => void,
): Promise<boolean> {
  let resolved: ResolvedStore;
  let store: ObjectStore;
  try {
    resolved = await resolveContextStore(ctx);
    onResolved(resolved);
    store = await openObjectStore(resolved.config);
  } catch (e) {
    if (e instanceof CliError) throw e; // a usage error: exit 3 with the message, like every command
    report(fail('configuration', `${message(e)}; the object-store checks were skipped`));
    return false;
  }
  const skipped = 'the object-store checks that follow were skipped';
  try {
    let source = resolved.credentialSource;
    try {
      const found = await resolvedCredentialSource(store);
      if (found) source += ` (found: ${found})`;
    } catch (e) {
      // Only the S3 SDK driver resolves a credential chain up front.
      report(fail('configuration', `${describeStore(resolved)}; ${message(e)} (looked in ` +
        `${resolved.credentialSource}): give keys (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or --s3-access-key-id-file ` +
        `and --s3-secret-access-key-file), a profile (-P), or run where an IAM role is available; ${skipped}`));
      return false;
    }
    report(ok('configuration', `${describeStore(resolved)}; credentials: ${source}`));

    const bucket = 'bucket'; // the same check name for a container or a directory: scripts read it
    try {
      if (!(await store.bucketExists())) {
        report(fail(bucket, `${storeFailureAdvice('bucket-missing', resolved, serverName, rawUrl)}; ${skipped}`));
        return true;
      }
    } catch (e) {
      const kind = classifyStoreError(e);
      report(fail(bucket, `${message(e)}: ${storeFailureAdvice(kind, resolved, serverName, rawUrl)}; ${skipped}`));
      // Reached but answering oddly (kind 'other') still counts as reached.
      return kind === 'other';
    }
    report(ok(bucket, `${store.bucket} exists and answers`));

    const layout = new ServerLayout(resolved.url.path, serverName);
    report(await probeRoundTrip(store, layout));
    try {
      report(await catalogSummary(store, layout));
    } catch (e) {
      report(fail('catalog', `could not read the catalog under ${layout.root}/: ${message(e)}`));
    }
    return true;
  } finally {
    await store.close();
  }
}

/** Check 5: PostgreSQL (loaded only when it runs: node-postgres is not needed with --no-postgres). */
async function postgresChecks(ctx: CommandContext<'doctor'>, target: ArchiveTarget, report: (r: CheckResult) => void): Promise<void> {
  const { gatherPostgresFacts, postgresResults } = await import('../doctor/postgres-checks.js');
  const opts = ctx.args.options;
  let facts;
  try {
    facts = await gatherPostgresFacts({
      host: opts.host ?? ctx.env.PGHOST,
      port: opts.port ?? ctx.env.PGPORT,
      user: opts.user ?? ctx.env.PGUSER,
      dbname: opts.dbname,
    });
  } catch (e) {
    report(fail('postgres connection', `cannot connect to PostgreSQL: ${message(e)}; give -h/-p/-U/-d (or PGHOST, ` +
      'PGPORT, PGUSER, PGPASSWORD), or --no-postgres to check the object store only'));
    return;
  }
  for (const r of await postgresResults(facts, target, new Date())) report(r);
}

const doctor: CommandModule<'doctor'> = {
  errorPrefix: 'Barman cloud doctor exception',
  run,
};

export default doctor;
