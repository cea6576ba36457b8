/** Synthetic-task problems of every kind, for tests that decode several branches of the embedded models at once. */
export const SAMPLE_PROBLEMS = [
  "Compute 17 + 5.",
  "Compute (17 + 5) * 3 - 8.",
  "Compute 3/4 + 5/6.",
  "Solve for x: 3x + 7 = 22.",
  "Compute 96 - 41.",
  "Compute 12 * 7 + 3.",
  "Solve for x: 5x - 3 = 2x + 12.",
  "Compute 1/2 + 1/3.",
];
