/**
 * MQTT topic matching (MQTT 5.0 §4.7) for the places where the cluster reads messages outside the
 * broker's subscription tree (replay from the stream). `+`/`#` never match a `$` first level
 * [MQTT-4.7.2-1].
 */
export function mqttMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === 0x24 && (filter[0] === '+' || filter[0] === '#')) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
