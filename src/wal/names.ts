// WAL file names (spec §6.1): segments, .partial segments, .backup history files, .history files.

/** barman's accepted names, case-insensitive hex (spec §6.1). */
const WAL_NAME = /^[0-9A-F]{8}([0-9A-F]{8}[0-9A-F]{8}(\.[0-9A-F]{8}\.backup|\.partial)?|\.history)$/i;

export function isWalName(name: string): boolean {
  return WAL_NAME.test(name);
}

export function isHistoryFile(name: string): boolean {
  return /^[0-9A-F]{8}\.history$/i.test(name);
}
