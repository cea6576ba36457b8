/** The part of vega-statistics (a dependency of vega, with no type declarations of its own) that deliberate uses. */
declare module "vega-statistics" {
  /** The inverse of the normal CDF: the value below which a share `p` of N(mean, stdev) lies (default N(0, 1)). */
  export function quantileNormal(p: number, mean?: number, stdev?: number): number;
  /** The normal CDF at `value` (default N(0, 1)). */
  export function cumulativeNormal(value: number, mean?: number, stdev?: number): number;
}
