// The shell front of barman-cloud-wal-archive and barman-cloud-wal-restore (bin/), generated from
// the option table. PostgreSQL runs these once per WAL file. With parallel archiving or prefetching
// most calls only confirm a file an earlier call already uploaded, or take a file an earlier call
// already downloaded: a Node process start alone costs ~70 ms here, the shell answers in a few ms.
// The shell handles exactly the spool hit of src/wal/parallel.ts (archivedBySpool,
// restoredFromSpool) and nothing else: any option it does not know, any doubt, any failure runs the
// Node program with the arguments unchanged. scripts/generate.mjs writes the files; a test checks that
// the committed ones match.
import { ASYNC_DEFAULT_MAX_PARALLEL, ASYNC_DEFAULT_PARALLEL, commandByName, type CommandSpec } from './spec.js';
import { SPOOL_MAX_AGE_MS, SPOOL_NAMES } from '../wal/spool.js';

/** Prefetched files older than this are not served (find's -mmin counts whole minutes). */
const SPOOL_MAX_AGE_MINUTES = SPOOL_MAX_AGE_MS / 60_000;

/** With --async, the shell waits up to this many 20 ms polls for the worker's marker before Node. */
const ASYNC_SHELL_WAIT_POLLS = 500;

/** Polls of 20 ms the restore shell waits for a segment the prefetcher is downloading, before Node. */
const PREFETCH_SHELL_WAIT_POLLS = 300;

const quote = (words: string[]): string => words.join('|');

/** The option words of a command, split into those that take a value and those that do not. */
function optionWords(spec: CommandSpec, handled: string[]): { withValue: string[]; flags: string[]; toNode: string[] } {
  const withValue: string[] = [];
  const flags: string[] = [];
  const toNode: string[] = [];
  for (const o of spec.options) {
    const words = [o.long, ...(o.aliases ?? []), ...(o.short ? [o.short] : [])];
    if (handled.includes(o.long)) continue;
    // --help, --version, --test and -v change what the call does or prints; nargs="*" lists
    // have no fixed length: all of them go to Node.
    if (['--help', '--version', '--test', '--verbose'].includes(o.long) || o.kind === 'list') toNode.push(...words);
    else if (o.kind === 'value' || o.kind === 'append') withValue.push(...words);
    else flags.push(...words);
  }
  return { withValue, flags, toNode };
}

interface Variant {
  prog: string;
  command: 'wal-archive' | 'wal-restore';
  /** Option and environment variable that must ask for more than one file at once. */
  countOption: string;
  countEnv: string;
  /** --async and its environment variable. */
  asyncOption: string;
  asyncEnv: string;
  /** The count --async assumes when none was given, as Node does (src/cli/commands/wal.ts). */
  asyncCount: number;
  /** Whether --async uses the spool whatever the count (wal-archive's worker; restore needs a count above 1). */
  asyncSpoolsAlways: boolean;
  positionals: string[];
  /** The positional naming the file in pg_wal beside which the default spool root lives. */
  walFile: 'p3' | 'p4';
  sub: 'archive' | 'restore';
  /** Shell code that sets $file, the spool entry this call would use. */
  name: string;
  /** Whether the entry must be younger than SPOOL_MAX_AGE_MINUTES. */
  fresh: boolean;
  /** More find tests for the entry, as unquoted shell words (a variable the name code set). */
  fileTest?: string;
  /** Shell code run once $file passed the checks: exits 0 on a hit, else falls through to Node. */
  hit: string;
  /** Shell code run before the checks (may wait for $file to appear). */
  wait?: string;
  /**
   * One more start point for the same find (a shell word) and what find prints for it instead of
   * the trust checks (an expression ending in -printf): one program started less than a stat
   * after it. The line it prints is left in $extra.
   */
  alsoFind?: { path: string; print: string };
}

function script(v: Variant): string {
  const spec = commandByName(v.command)!;
  const { withValue, flags, toNode } = optionWords(spec, [v.countOption, '--spool-dir', v.asyncOption]);
  // The same words as flagFromEnv() in src/cli/commands/wal.ts; any other value is Node's to refuse.
  const asyncEnv = `case \${${v.asyncEnv}:-} in '' | 0 | false | no | off) async= ;; 1 | true | yes | on) async=1 ;; *) node_program "$@" ;; esac\n`;
  const n = v.positionals.length;
  const text = `#!/bin/sh
":" /*
# ${v.prog}: generated from src/cli/spec.ts by src/cli/fast-path.ts (npm run generate); do not edit.
# Both a shell script and a Node program. Run directly, the shell answers a spool hit without
# starting Node and runs this same file with Node otherwise; \`node <this file>\` skips the shell.
node_program() {
  exec node "$0" "$@"
}
count=\${${v.countEnv}:-} given= spool=\${BARMAN_CLOUD_SPOOL_DIR:-} n=0 p1= p2= p3= p4= want=
${asyncEnv}for arg in "$@"; do
  if [ -n "$want" ]; then
    case $want in count) count=$arg given=1 ;; spool) spool=$arg ;; esac
    want=
    continue
  fi
  case $arg in
    ${v.countOption}) want=count ;;
    ${v.countOption}=*) count=\${arg#*=} given=1 ;;
    --spool-dir) want=spool ;;
    --spool-dir=*) spool=\${arg#*=} ;;
    ${v.asyncOption}) async=1 ;;
    ${quote(toNode)}) node_program "$@" ;;
    ${quote(withValue)}) want=skip ;;
    ${quote(withValue.filter((w) => w.startsWith('--')).map((w) => `${w}=*`))}) ;;
    ${quote(flags)}) ;;
    -*) node_program "$@" ;;
    *) n=$((n + 1)); case $n in 1) p1=$arg ;; 2) p2=$arg ;; 3) p3=$arg ;; 4) p4=$arg ;; *) node_program "$@" ;; esac ;;
  esac
done
[ -z "$want" ] && [ "$n" = ${n} ] || node_program "$@"
# No count given (an empty variable is none, an empty option value is Node's to refuse): --async
# assumes the same default as Node, else 1.
if [ -z "$given" ] && [ -z "$count" ]; then
  if [ -n "$async" ]; then count=${v.asyncCount}; else count=1; fi
fi
case $count in [1-9] | [1-9][0-9] | [1-9][0-9][0-9]) ;; *) node_program "$@" ;; esac
[ "$count" != 1 ]${v.asyncSpoolsAlways ? ' || [ -n "$async" ]' : ''} || node_program "$@"
# The effective uid, read without starting a program (each costs several ms here): the shell's own
# /proc/self/status when there is one, else id -u.
uid=
if [ -r /proc/self/status ]; then
  while read -r key real eff rest; do
    case $key in Uid:) uid=$eff; break ;; esac
  done </proc/self/status
fi
[ -n "$uid" ] || uid=$(id -u 2>/dev/null) || node_program "$@"
case $uid in '' | *[!0-9]*) node_program "$@" ;; esac
explicit=$spool
if [ -z "$spool" ]; then
  # Beside the WAL file PostgreSQL names, in pg_wal (defaultSpoolRoot() in src/wal/spool.ts).
  case $${v.walFile} in *[/]*) spool=\${${v.walFile}%/*}/ ;; *) spool= ;; esac
  spool=$spool.barman-cloud-spool-$uid
fi
case $spool in '' | *[/] | . | .. | *[/]. | *[/]..) node_program "$@" ;; *[/]*) parent=\${spool%/*} ;; *) parent=. ;; esac
parent=\${parent:-/}
# One spool directory per (store URL, server name), named by a hash (spoolDirFor() in
# src/wal/spool.ts): the first 16 hex digits of sha256 of both, one per line (a here-document:
# no extra process for printf). Node lists the names it made in $spool/${SPOOL_NAMES}
# (recordSpoolName()): read with the shell's own read, that saves starting sha256sum, and the find
# below checks the file as it checks the spool (a glob character in the path only makes -path miss
# it: then the checks of the other levels apply to it, and restore's freshness test leaves it to Node).
case $p1$p2 in *'
'*) node_program "$@" ;; esac
# Every file read before the find below checks it (the names file here, restore's worker.pid and segment-size)
# is opened read-write, which never waits (a read-only open of a FIFO planted in a spool someone
# else can write waits for a writer for ever), and read only if what was opened is a regular file
# (/dev/fd/3: the open file itself, not a path that could be switched meanwhile); -f first, so
# that a missing file is not created (docs/format.md#spool-reads).
id= names= namesline=
if [ -f "$spool/${SPOOL_NAMES}" ]; then
  { [ -f /dev/fd/3 ] && while IFS= read -r lid && IFS= read -r lurl && IFS= read -r lserver; do
    if [ "$lurl" = "$p1" ] && [ "$lserver" = "$p2" ]; then id=$lid names=$spool/${SPOOL_NAMES} namesline="
$spool/${SPOOL_NAMES}"; break; fi
  done <&3; } 3<>"$spool/${SPOOL_NAMES}"
fi 2>/dev/null
if [ -z "$id" ]; then
  id=$(sha256sum 2>/dev/null <<EOF
$p1
$p2
EOF
) || node_program "$@"
  id=\${id%%[!0-9a-f]*}
  [ \${#id} = 64 ] || node_program "$@"
  id=\${id%????????????????????????????????????????????????}
fi
sub=$spool/$id/${v.sub}
${v.name}
${v.wait ?? ''}# The spool is believed only when nobody else can have written it (trustedSpoolDir() in
# src/wal/spool.ts): the root's directory (named with "/." so find follows a symlink to it and
# -name . tells it apart) owned by us or root and writable by nobody else unless sticky; each level
# and the file ours, writable by nobody else, a real directory or regular file (find does not
# follow symlinks)${v.fresh ? `, the file younger than ${SPOOL_MAX_AGE_MINUTES} minutes` : ''}. Anything else is Node's to decide.
seen=$(find "$parent/." "$spool" "$spool/$id" "$sub" "$file"\${names:+ "$names"}${v.alsoFind ? ` ${v.alsoFind.path}` : ''} -maxdepth 0${v.alsoFind ? ` \\( -path ${v.alsoFind.path} ${v.alsoFind.print} \\) -o` : ''}\${names:+ \\( -path "$names" -user "$uid" ! -perm -0020 ! -perm -0002 -type f -print \\) -o} \\( -name . -type d \\( -user "$uid" -o -user 0 \\) \\( -perm -1000 -o ! -perm -0020 ! -perm -0002 \\) -o ! -name . -user "$uid" ! -perm -0020 ! -perm -0002 \\( -type d -o -type f${v.fresh ? ` -mmin -${SPOOL_MAX_AGE_MINUTES}` : ''}${v.fileTest ? ` ${v.fileTest}` : ''} \\) \\) -print 2>/dev/null) || node_program "$@"
${v.alsoFind ? `extra=\${seen##*'
'} seen=\${seen%'
'*}
` : ''}[ "$seen" = "$parent/.
$spool
$spool/$id
$sub
$file$namesline" ] && [ -f "$file" ] && [ ! -h "$file" ] || node_program "$@"
${v.hit}node_program "$@"
*/
require('../dist/cli/launch.cjs').launch('${v.command}');
`;
  // The shell part sits in one JavaScript comment: it must not close it early.
  const shell = text.slice(text.indexOf('/*') + 2, text.lastIndexOf('*/'));
  if (shell.includes('*/')) throw new Error(`the shell part of ${v.prog} contains "*/"`);
  return text;
}

/** bin/barman-cloud-wal-archive: a confirmed upload of exactly this file is recorded (archivedBySpool). */
export function walArchiveScript(): string {
  return script({
    prog: 'barman-cloud-wal-archive',
    command: 'wal-archive',
    countOption: '--max-parallel',
    countEnv: 'BARMAN_CLOUD_WAL_ARCHIVE_MAX_PARALLEL',
    asyncOption: '--async',
    asyncEnv: 'BARMAN_CLOUD_WAL_ARCHIVE_ASYNC',
    asyncCount: ASYNC_DEFAULT_MAX_PARALLEL,
    asyncSpoolsAlways: true,
    positionals: ['destination_url', 'server_name', 'wal_path'],
    walFile: 'p3',
    sub: 'archive',
    // $p3 is also a start point and a -path pattern of find: nothing find could read otherwise.
    name: `case \${p3##*[/]} in .* | '') node_program "$@" ;; esac
case $p3 in -* | '!' | '(' | ')' | ',' | *[][*?\\\\]*) node_program "$@" ;; esac
file=$sub/\${p3##*[/]}`,
    fresh: false,
    alsoFind: { path: '"$p3"', print: "-printf '%i %s %T@\\n'" },
    // --async: while the worker uploads this file, wait for its marker here (a sleep costs ~1 ms
    // of CPU, a Node start ~70 ms that the worker needs on a small machine). Only while the file
    // is .ready, a worker lock exists and no failure was recorded; then the usual checks decide,
    // and Node (which also replaces a dead worker and reports failures) takes over after 10 s.
    wait: `if [ -n "$async" ]; then
  case $p3 in *[/]*) wd=\${p3%/*} ;; *) wd=. ;; esac
  i=0
  while [ ! -f "$file" ] && [ ! -f "$file.error" ] && [ -f "$sub/worker.pid" ] && [ -f "$wd/archive_status/\${p3##*[/]}.ready" ] && [ $i -lt ${ASYNC_SHELL_WAIT_POLLS} ]; do
    sleep 0.02 2>/dev/null || break
    i=$((i + 1))
  done
fi
`,
    hit: `m=
if { IFS= read -r m || [ -n "$m" ]; } <"$file"; then
  case $m in *'"ino":"'*'"mtimeNs":"'*) ;; *) node_program "$@" ;; esac
  ino=\${m#*'"ino":"'} ino=\${ino%%'"'*}
  mtime=\${m#*'"mtimeNs":"'} mtime=\${mtime%%'"'*}
  size=\${m#*'"size":'} size=\${size%%[,\\}]*}
  # The same file, untouched since its upload (inode, size and mtime in ns; find's %T@ has ten
  # digits after the point, the last one 0); else Node decides. A symbolic link shows its own.
  s=\${extra##* } f=\${extra##*.}
  [ \${#f} -ge 9 ] || node_program "$@"
  s=\${s%%.*}\${f%\"\${f#?????????}\"}
  if [ "\${extra% *} $s" = "$ino $size $mtime" ]; then
    # Under --async the worker removes the marker once PostgreSQL dropped the .ready status
    # (runArchiveWorker()): one program less per call.
    [ -n "$async" ] && exit 0
    rm -f -- "$file" && exit 0
  fi
fi
`,
  });
}

/** bin/barman-cloud-wal-restore: a prefetched copy, renamed into place (restoredFromSpool). */
export function walRestoreScript(): string {
  return script({
    prog: 'barman-cloud-wal-restore',
    command: 'wal-restore',
    countOption: '--parallel',
    countEnv: 'BARMAN_CLOUD_WAL_RESTORE_PARALLEL',
    asyncOption: '--async',
    asyncEnv: 'BARMAN_CLOUD_WAL_RESTORE_ASYNC',
    asyncCount: ASYNC_DEFAULT_PARALLEL,
    asyncSpoolsAlways: false,
    positionals: ['source_url', 'server_name', 'wal_name', 'wal_dest'],
    walFile: 'p4',
    sub: 'restore',
    name: `case $p3 in *[/]* | .* | '') node_program "$@" ;; esac
file=$sub/$p3`,
    fresh: true,
    // Only segments are prefetched: one of another size than the spool's segment size (a file cut
    // short, whatever the reason) is Node's to judge.
    fileTest: '$sizetest',
    // --async: the prefetcher marks each segment it is downloading (<wal>.fetching); wait for it
    // here while that worker lives (its pid answers kill -0) rather than start Node (~70 ms) for a
    // download already under way. Bounded; then the usual checks decide, and Node after them.
    wait: `i=0 pid=
while [ ! -f "$file" ] && [ -f "$file.fetching" ] && [ $i -lt ${PREFETCH_SHELL_WAIT_POLLS} ]; do
  [ -n "$pid" ] || { [ -f "$sub/worker.pid" ] && { [ -f /dev/fd/3 ] && { read -r pid <&3 || [ -n "$pid" ]; }; } 3<>"$sub/worker.pid"; } 2>/dev/null || break
  case $pid in '' | *[!0-9]*) break ;; esac
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.02 2>/dev/null || break
  i=$((i + 1))
done
sizetest= size=
if [ -e "$sub/segment-size" ] || [ -h "$sub/segment-size" ]; then
  { [ -f "$sub/segment-size" ] && { [ -f /dev/fd/3 ] && { read -r size <&3 || [ -n "$size" ]; }; } 3<>"$sub/segment-size"; } 2>/dev/null || node_program "$@"
fi
case $size in '' | *[!0-9]*) ;; *) sizetest="-size \${size}c" ;; esac
`,
    hit: `if [ -n "$explicit" ]; then
  # Served only on the destination's filesystem, so that mv is one atomic rename(2); Node copies
  # across filesystems. The default root lies in the destination's directory: no need to ask.
  case $p4 in *[/]*) dir=\${p4%/*} ;; *) dir=. ;; esac
  devs=$(stat -L -c %d -- "$file" "\${dir:-/}" 2>/dev/null) || node_program "$@"
  d1=\${devs%%[!0-9]*} d2=\${devs##*[!0-9]}
  [ -n "$d1" ] && [ "$d1" = "$d2" ] && [ "$devs" = "$d1
$d2" ] || node_program "$@"
fi
mv -fT -- "$file" "$p4" && exit 0
`,
  });
}
