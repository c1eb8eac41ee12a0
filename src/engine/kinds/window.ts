/** A group's sliding window: the arrival times of the events in it, oldest first. */
export interface WindowState {
  ats: number[];
}

/** How many of the oldest arrival times came before `from`: the events that have left the window. */
export function leftWindow(ats: readonly number[], from: number): number {
  let n = 0;
  while (n < ats.length && (ats[n] as number) < from) n++;
  return n;
}

/** Forgets the groups whose newest event came before `from`: every event of theirs has left the window. */
export function pruneWindows(groups: Map<string, WindowState>, from: number): void {
  for (const [group, st] of groups) {
    const newest = st.ats[st.ats.length - 1];
    if (newest === undefined || newest < from) groups.delete(group);
  }
}
