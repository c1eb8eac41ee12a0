import { ShadowRules } from '../shadow/index.js';
import { upstreamTopics } from '../shared/index.js';
import type { CloudSync } from '../sync/index.js';
import type { DecisionModule } from './decision.js';
import type { Foundation } from './foundation.js';
import type { Started } from './modules.js';
import type { UplinkModule } from './uplink.js';

export interface ShadowModule extends Started {
  readonly shadow: ShadowRules;
}

/**
 * Shadow rules (docs/sync.md, "Shadow rules"): a bundle on `vigil/{gw}/rules/shadow` runs beside the live rules,
 * fed each input after the live loop applied it; what it would have done differently goes up on `vigil/{gw}/shadow`.
 */
export function startShadow(
  base: Foundation,
  decision: DecisionModule,
  uplink: UplinkModule,
  sync: CloudSync,
): ShadowModule {
  const topics = upstreamTopics(base.gatewayId);
  const { profiles } = base.store;
  const shadow = new ShadowRules({
    gateway: base.gatewayId,
    trustedKeys: () => base.files.trustedKeys,
    running: () => sync.rules.running,
    live: decision.rules,
    wall: () => decision.loop.wall.state(),
    engine: { gateway: base.gatewayId },
    profileOf: (actor) => {
      const peeked = profiles.peek(actor);
      return peeked.hit ? peeked.profile : undefined;
    },
    publish: (report) => uplink.publishStatus(topics.shadow, JSON.stringify(report)),
    now: () => decision.clock.now(),
    reportEveryMs: base.config.sync.shadowReport,
    logger: base.logger.child({ part: 'shadow' }),
    // The shadow starts from a copy of the live state: only once recovery brought it up to date.
    ready: decision.recovered.catch(() => undefined),
  });
  decision.afterLive((input, profile) => shadow.applied(input, profile));
  decision.onSent((candidate, replay) => {
    if (!replay) shadow.liveSent(candidate);
  });
  decision.rules.onSwap((rules) => shadow.liveSwapped(rules));
  uplink.route(topics.rulesShadow, (payload) => shadow.handle(payload));
  return {
    shadow,
    stop() {
      shadow.stop();
      return Promise.resolve();
    },
  };
}
