// Tag arguments (docs/format.md#tags): deprecated `--tags k,v …` words parsed as CSV, or repeatable
// `--tag k,v` split on the first comma and validated. The `--tag` form wins when both exist
// (argparse makes them mutually exclusive anyway).
import { CliError, GeneralError } from '../errors.js';
import type { Tag } from '../storage/types.js';

/** One CSV record with ',' as delimiter and '"' quoting, as Python's csv.reader reads it. */
export function parseCsvRecord(text: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      fields.push(field);
      field = '';
    } else field += ch;
  }
  fields.push(field);
  return fields;
}

const TAG_CHARS = /^[a-zA-Z0-9\s_.:/=+\-@]*$/;

function parseTagAppend(raw: string): Tag {
  const comma = raw.indexOf(',');
  if (comma < 0) throw new CliError(`Invalid tag format: '${raw}' (expected key,value)`);
  const key = raw.slice(0, comma).trim();
  const value = raw.slice(comma + 1).trim();
  if (key.length < 1 || key.length > 128) throw new CliError(`Invalid tag key '${key}': must be 1 to 128 characters`);
  if (key.toLowerCase().startsWith('aws:')) throw new CliError(`Invalid tag key '${key}': must not start with 'aws:'`);
  if (value.length > 256) throw new CliError(`Invalid tag value for '${key}': at most 256 characters`);
  if (!TAG_CHARS.test(key) || !TAG_CHARS.test(value)) {
    throw new CliError(`Invalid tag '${raw}': only letters, digits, spaces and _ . : / = + - @ are allowed`);
  }
  return [key, value];
}

export function parseTags(list: string[] | undefined, append: string[] | undefined): Tag[] {
  if (append?.length) return append.map(parseTagAppend);
  return (list ?? []).map((word) => {
    const fields = parseCsvRecord(word);
    if (fields.length !== 2) throw new CliError(`Invalid tag format: ${word}`);
    return [fields[0], fields[1]] as Tag;
  });
}

/** barman-cloud-backup's extra limits (docs/format.md#tags): at most 10 tags, no duplicate keys (exit 4). */
export function checkBackupTags(tags: Tag[]): void {
  if (tags.length > 10) throw new GeneralError('S3 allows no more than 10 tags per object');
  const keys = new Set<string>();
  for (const [k] of tags) {
    if (keys.has(k)) throw new GeneralError(`Duplicate tag key: ${k}`);
    keys.add(k);
  }
}
