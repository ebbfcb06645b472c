/**
 * Broker → client Topic Aliases (MQTT 5.0 §3.3.2.3.4) for one network connection.
 *
 * The first PUBLISH of a topic carries the topic and an alias; later ones carry an empty topic and
 * the alias. The mapping lives only as long as the connection [MQTT-3.3.2-7], so this object hangs
 * off `Connection` and is created at CONNECT only for a client that announced a Topic Alias
 * Maximum > 0 (none is ever sent otherwise [MQTT-3.1.2-27]); aliases never exceed
 * min(client's maximum, `limits.outboundTopicAliasMaximum`) [MQTT-3.1.2-26] [MQTT-3.3.2-11].
 *
 * Replacement is least-recently-used, approximated by CLOCK (second chance): a hit only sets a
 * reference bit, so the hot path is one Map lookup and no allocation — a true LRU built on Map
 * insertion order would delete and re-insert the key on every message. When all aliases are taken,
 * the hand sweeps past recently used entries (clearing their bit) and reuses the first one that
 * was not; the client learns the new mapping from the topic sent with it.
 */
export class OutboundTopicAliases {
  /** Highest alias value this connection may use (≥ 1). */
  readonly maximum: number;
  /** Topics shorter than this (UTF-16 code units) are sent without an alias. */
  readonly minTopicLength: number;
  #byTopic: Map<string, number> | null = null;
  /** Topic of each alias (index alias - 1), for eviction. */
  #topics: string[] | null = null;
  /** CLOCK reference bits, index alias - 1. */
  #used: Uint8Array | null = null;
  #hand = 0;

  constructor(maximum: number, minTopicLength: number) {
    this.maximum = maximum;
    this.minTopicLength = minTopicLength;
  }

  /** How many aliases are assigned. */
  get size(): number {
    return this.#byTopic === null ? 0 : this.#byTopic.size;
  }

  /**
   * The alias to send `topic` with: > 0 when the client already knows it (send an empty topic),
   * < 0 for a new mapping (send the topic with alias -n, then `assign` it once the packet is
   * written), 0 when the topic is not aliased (too short).
   */
  lookup(topic: string): number {
    if (topic.length < this.minTopicLength) return 0;
    const m = this.#byTopic;
    if (m !== null) {
      const alias = m.get(topic);
      if (alias !== undefined) {
        this.#used![alias - 1] = 1;
        return alias;
      }
      if (m.size >= this.maximum) return -this.#victim();
      return -(m.size + 1);
    }
    return -1;
  }

  /**
   * Record that the client now maps `alias` to `topic` (a PUBLISH with both was written). An alias
   * that was mapped to another topic is taken from it.
   */
  assign(topic: string, alias: number): void {
    let m = this.#byTopic;
    if (m === null) {
      m = new Map();
      this.#byTopic = m;
      this.#topics = [];
      this.#used = new Uint8Array(this.maximum);
    }
    const topics = this.#topics!;
    const previous = topics[alias - 1];
    if (previous !== undefined) m.delete(previous);
    topics[alias - 1] = topic;
    m.set(topic, alias);
    // The reference bit stays clear until the topic is used again: a topic sent once is the
    // first to go, one in steady use survives a sweep (set on insert, CLOCK degrades to FIFO).
    this.#used![alias - 1] = 0;
    if (alias - 1 === this.#hand) this.#hand = alias === this.maximum ? 0 : alias;
  }

  /** CLOCK: the next alias whose reference bit is clear, clearing bits on the way. */
  #victim(): number {
    const used = this.#used!;
    const n = this.maximum;
    let h = this.#hand;
    while (used[h] === 1) {
      used[h] = 0;
      h = h + 1 === n ? 0 : h + 1;
    }
    this.#hand = h;
    return h + 1;
  }
}
