/**
 * The option engine: which configured option values a client gets, resolved from tagged option specs (dnsmasq's
 * `--dhcp-option=tag:TAG,…` and per-host `set:TAG`) and encoded once per configuration, never per packet.
 *
 * A client has a set of tags (today: `known` and the `set:` tags of its reservation; other features may add tags
 * derived from the request, e.g. PXE's client architecture). For each option code the spec that applies is the
 * matching one with the most tag conditions (dnsmasq: a tagged option overrides an untagged one), the last given
 * among equals; a spec without a value removes the option. A reservation's own `options` win over everything.
 * Resolutions are cached by the client's tags that any spec mentions, so the reply path does a map lookup.
 */
import type { OptionSpec } from './option-spec.js';

export interface ResolvedOptions {
  /** code -> the bytes to send when the client asks for the code (or always, if forced) */
  readonly values: ReadonlyMap<number, Uint8Array>;
  /** the same values indexed by code (0-255): the reply path looks up every code of a request list here */
  readonly byCode: readonly (Uint8Array | undefined)[];
  /** codes sent even when not asked for (--dhcp-option-force), ascending */
  readonly forced: readonly number[];
  /** what a client that sent no parameter request list gets: the built-in options first, then ascending codes */
  readonly defaultOrder: readonly number[];
}

interface Candidate {
  spec: Pick<OptionSpec, 'when' | 'value' | 'force'>;
  /** position: later given wins among equally specific specs */
  order: number;
}

/** Distinct tag combinations remembered; more (only possible with request-derived tags) start the cache afresh. */
const MAX_CACHED = 1024;
const NO_TAGS: ReadonlySet<string> = new Set();

export class OptionEngine {
  private readonly byCode = new Map<number, Candidate[]>();
  /** tags some spec tests: only these matter for a resolution, so they alone make the cache key */
  private readonly relevantTags = new Set<string>();
  private readonly cache = new Map<string, ResolvedOptions>();
  private readonly builtInOrder: number[];
  private readonly perHost = new WeakMap<object, ResolvedOptions>();
  /** what a client without a reservation or earned tags gets (the common case: no key to build) */
  private everybody: ResolvedOptions | undefined;
  /** a host with its own options whose request also earned tags: per host, by the relevant tags */
  private readonly perHostTagged = new WeakMap<object, Map<string, ResolvedOptions>>();

  /**
   * `builtIn`: the options natd derives from its own configuration (mask, router, DNS, domain, …), in the order sent
   * to clients without a request list. `specs`: --dhcp-option / --dhcp-option-force in the order given.
   * `serverAddress` fills 0.0.0.0 in address lists (dnsmasq's "this server").
   */
  constructor(builtIn: ReadonlyMap<number, Uint8Array>, specs: readonly OptionSpec[], private readonly serverAddress: number) {
    this.builtInOrder = [...builtIn.keys()];
    let order = 0;
    for (const [code, value] of builtIn) this.add(code, { spec: { when: [], value, force: false }, order: order++ });
    for (const spec of specs) {
      this.add(spec.code, { spec: { when: spec.when, value: this.fill(spec), force: spec.force }, order: order++ });
      for (const c of spec.when) this.relevantTags.add(c.tag);
    }
  }

  /** The options for a client with these tags (lower-case). */
  resolve(tags: ReadonlySet<string> = NO_TAGS): ResolvedOptions {
    const key = [...tags].filter((t) => this.relevantTags.has(t)).sort().join(',');
    let resolved = this.cache.get(key);
    if (!resolved) {
      if (this.cache.size >= MAX_CACHED) this.cache.clear();
      resolved = this.compute(tags, []);
      this.cache.set(key, resolved);
    }
    return resolved;
  }

  /**
   * The options for a reservation's host: its tags plus `known` (as dnsmasq sets for a matched dhcp-host), then its
   * own options on top. Cached per reservation object (a new reservation list brings new objects).
   */
  forHost(host: { readonly tags?: readonly string[]; readonly options?: readonly OptionSpec[] }): ResolvedOptions {
    const cached = this.perHost.get(host);
    if (cached) return cached;
    const tags = new Set(['known', ...(host.tags ?? []).map((t) => t.toLowerCase())]);
    const resolved = host.options && host.options.length > 0 ? this.compute(tags, host.options) : this.resolve(tags);
    this.perHost.set(host, resolved);
    return resolved;
  }

  /**
   * A client whose request earned tags (--dhcp-match, --dhcp-userclass, --dhcp-vendorclass): with its reservation's
   * tags, `known` and own options when it has one. Cached like the others, so the reply path stays a map lookup.
   */
  forClient(host: { readonly tags?: readonly string[]; readonly options?: readonly OptionSpec[] } | undefined, earned: ReadonlySet<string>): ResolvedOptions {
    if (earned.size === 0) return host ? this.forHost(host) : (this.everybody ??= this.resolve());
    if (!host) return this.resolve(earned);
    const tags = new Set(['known', ...(host.tags ?? []).map((t) => t.toLowerCase()), ...earned]);
    if (!host.options || host.options.length === 0) return this.resolve(tags);
    let byKey = this.perHostTagged.get(host);
    if (!byKey) this.perHostTagged.set(host, (byKey = new Map()));
    const key = [...tags].filter((t) => this.relevantTags.has(t)).sort().join(',');
    let resolved = byKey.get(key);
    if (!resolved) {
      if (byKey.size >= MAX_CACHED) byKey.clear();
      resolved = this.compute(tags, host.options);
      byKey.set(key, resolved);
    }
    return resolved;
  }

  private add(code: number, candidate: Candidate): void {
    const list = this.byCode.get(code);
    if (list) list.push(candidate);
    else this.byCode.set(code, [candidate]);
  }

  private fill(spec: OptionSpec): Uint8Array | undefined {
    if (!spec.value || !spec.addressList) return spec.value;
    const out = new Uint8Array(spec.value);
    for (let i = 0; i + 4 <= out.length; i += 4) {
      if (out[i] === 0 && out[i + 1] === 0 && out[i + 2] === 0 && out[i + 3] === 0) {
        const a = this.serverAddress >>> 0;
        out.set([a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255], i);
      }
    }
    return out;
  }

  private compute(tags: ReadonlySet<string>, own: readonly OptionSpec[]): ResolvedOptions {
    const values = new Map<number, Uint8Array>();
    const forced: number[] = [];
    const chosen = new Map<number, Candidate['spec']>();
    for (const [code, candidates] of this.byCode) {
      let best: Candidate | undefined;
      for (const c of candidates) {
        if (!c.spec.when.every((w) => tags.has(w.tag) !== w.negated)) continue;
        if (!best || c.spec.when.length >= best.spec.when.length) best = c;
      }
      if (best) chosen.set(code, best.spec);
    }
    for (const spec of own) chosen.set(spec.code, { when: spec.when, value: this.fill(spec), force: spec.force });
    for (const [code, spec] of chosen) {
      if (!spec.value) continue;
      values.set(code, spec.value);
      if (spec.force) forced.push(code);
    }
    forced.sort((a, b) => a - b);
    const builtIn = this.builtInOrder.filter((c) => values.has(c));
    const rest = [...values.keys()].filter((c) => !builtIn.includes(c)).sort((a, b) => a - b);
    const byCode = new Array<Uint8Array | undefined>(256).fill(undefined);
    for (const [code, value] of values) byCode[code] = value;
    return Object.freeze({ values, byCode: Object.freeze(byCode), forced: Object.freeze(forced), defaultOrder: Object.freeze([...builtIn, ...rest]) });
  }
}
