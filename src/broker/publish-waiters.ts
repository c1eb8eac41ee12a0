/** aedes' callback for a publish it asked about: acknowledge it (QoS 1) and read on, or close the connection. */
export type PublishDone = (err?: Error | null) => void;

/** Called for each publish whose promise rejected, to refuse it (log, close the connection). */
export type RefusePublish<Who> = (err: unknown, who: Who, topic: string, done: PublishDone) => void;

/** How many emptied groups are kept for reuse: as many as promises usually pending at once, a few commits. */
const SPARE_GROUPS = 8;

/** The publishes waiting for one promise, in the order they asked; reused once answered. */
class Group<Who> {
  count = 0;
  readonly dones: Array<PublishDone | undefined> = [];
  readonly whos: Array<Who | undefined> = [];
  readonly topics: Array<string | undefined> = [];
  /** Made once per group, not per promise it waits for. */
  readonly resolved: () => void;
  readonly rejected: (err: unknown) => void;

  constructor(waiters: PublishWaiters<Who>) {
    this.resolved = () => waiters.answer(this, undefined, false);
    this.rejected = (err: unknown) => waiters.answer(this, err, true);
  }
}

/**
 * Answers the publishes that wait for the same promise from one `then`. At QoS 1 a device event's publish is
 * acknowledged once the journal commit that holds its record is done, and every record appended before a commit
 * shares that commit's promise: a `then` with two functions for each publish was about 0.2–0.4 KB per QoS 1 event
 * (docs/benchmarks.md). Consecutive publishes with the same promise join one group; each publish is answered as
 * before, in the order it asked, when its promise settles.
 */
export class PublishWaiters<Who> {
  readonly #refuse: RefusePublish<Who>;
  #current: Group<Who> | undefined;
  #currentPromise: Promise<void> | undefined;
  readonly #spare: Array<Group<Who>> = [];

  constructor(refuse: RefusePublish<Who>) {
    this.#refuse = refuse;
  }

  /** `done(null)` once `pending` resolves; once it rejects, the publish is refused. */
  wait(pending: Promise<void>, done: PublishDone, who: Who, topic: string): void {
    let group = this.#current;
    if (group === undefined || pending !== this.#currentPromise) {
      group = this.#spare.pop() ?? new Group(this);
      this.#current = group;
      this.#currentPromise = pending;
      pending.then(group.resolved, group.rejected);
    }
    const i = group.count++;
    group.dones[i] = done;
    group.whos[i] = who;
    group.topics[i] = topic;
  }

  /** Answers every publish of `group`, then keeps it for reuse. */
  answer(group: Group<Who>, err: unknown, failed: boolean): void {
    if (this.#current === group) {
      this.#current = undefined;
      this.#currentPromise = undefined;
    }
    let thrown: { err: unknown } | undefined;
    for (let i = 0; i < group.count; i++) {
      const done = group.dones[i] as PublishDone;
      const who = group.whos[i] as Who;
      const topic = group.topics[i] as string;
      group.dones[i] = undefined;
      group.whos[i] = undefined;
      group.topics[i] = undefined;
      try {
        if (failed) this.#refuse(err, who, topic, done);
        else done(null);
      } catch (e) {
        // One publish's callback failing does not leave the others unanswered.
        thrown ??= { err: e };
      }
    }
    group.count = 0;
    if (this.#spare.length < SPARE_GROUPS) this.#spare.push(group);
    if (thrown !== undefined) throw thrown.err;
  }
}
