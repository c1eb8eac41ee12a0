/**
 * Inputs appended to the journal and not yet recorded, in journal order, until the commit that records them hands
 * them on: three parallel lists (the record's number, the input, its profile) from `#from` to `#end - 1`, reused from
 * commit to commit, not an entry per input.
 */
export class UnappliedInputs<I, P> {
  readonly #seqs: number[] = [];
  readonly #inputs: Array<I | undefined> = [];
  readonly #profiles: Array<P | undefined> = [];
  #from = 0;
  #end = 0;

  get size(): number {
    return this.#end - this.#from;
  }

  /** Adds input `seq` (after every one held). */
  push(seq: number, input: I, profile: P | undefined): void {
    const i = this.#end++;
    this.#seqs[i] = seq;
    this.#inputs[i] = input;
    this.#profiles[i] = profile;
  }

  /**
   * Hands `each` the inputs held through `seq`, in order, and forgets them. What `each` pushes meanwhile comes after
   * them, and is held for a later call.
   */
  takeThrough(seq: number, each: (seq: number, input: I, profile: P | undefined) => void): void {
    const seqs = this.#seqs;
    const inputs = this.#inputs;
    const profiles = this.#profiles;
    while (this.#from < this.#end && (seqs[this.#from] as number) <= seq) {
      const i = this.#from++;
      const input = inputs[i] as I;
      const profile = profiles[i];
      inputs[i] = undefined;
      profiles[i] = undefined;
      each(seqs[i] as number, input, profile);
    }
    if (this.#from === this.#end) {
      this.#from = 0;
      this.#end = 0;
    } else if (this.#from >= 1_024 && this.#from * 2 >= this.#end) {
      // Under steady load the commit that ends finds later inputs waiting, and the lists never empty: what is held
      // moves to the front once the taken part is the larger half, so they stay as long as what is held.
      this.#compact();
    }
  }

  #compact(): void {
    const n = this.#end - this.#from;
    for (let i = 0; i < n; i++) {
      const j = this.#from + i;
      this.#seqs[i] = this.#seqs[j] as number;
      this.#inputs[i] = this.#inputs[j];
      this.#profiles[i] = this.#profiles[j];
      this.#inputs[j] = undefined;
      this.#profiles[j] = undefined;
    }
    this.#from = 0;
    this.#end = n;
  }
}
