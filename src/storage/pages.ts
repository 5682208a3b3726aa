// The pages of a listing are chained by the server's continuation tokens, which we take on trust
// no further than this (docs/format.md#listing-pages): a page that says more follow must say
// where, and no place twice. Otherwise a listing that ends early reads as a whole one (a WAL on
// the next page is "not there"), and one whose token repeats never ends.
import { StorageError } from '../errors.js';

export class PageChain {
  private readonly seen = new Set<string>();

  /** `what` names the listing in messages ("S3 list", "listing wals/"). */
  constructor(private readonly what: string) {}

  /**
   * The token to ask the next page with, or undefined after the last page. `more`: the page says
   * more follow (S3's IsTruncated; GCS and Azure say it only by giving a token).
   */
  next(more: boolean, token: string | undefined): string | undefined {
    if (!more) return undefined;
    if (!token) throw new StorageError(`${this.what}: a page says more follow but gives no continuation token: the listing is incomplete`);
    if (this.seen.has(token)) throw new StorageError(`${this.what}: the server gave the same continuation token twice: the listing would never end`);
    this.seen.add(token);
    return token;
  }
}
