/** Independent random streams drawn from one seed; adding draws to one never changes the others. */
export const Stream = {
  profile: 1,
  readings: 2,
  behaviours: 3,
  rotation: 4,
} as const;
