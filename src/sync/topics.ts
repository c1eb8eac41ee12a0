/** The upstream topics sync uses, `{gw}` being the gateway id (DESIGN.md, "Upstream topics"). */
export function syncTopics(gw: string) {
  return {
    /** Retained signed rule bundle, cloud to gateway. */
    rules: `vigil/${gw}/rules`,
    /** What the gateway did with a rules change. */
    rulesStatus: `vigil/${gw}/rules/status`,
    /** Profile batches, cloud to gateway. */
    profiles: `vigil/${gw}/profiles`,
    /** What the gateway did with a profile batch. */
    profilesStatus: `vigil/${gw}/profiles/status`,
  } as const;
}
