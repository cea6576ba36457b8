/**
 * The area under the ROC curve of scores against binary labels: the probability that a random
 * positive scores above a random negative, ties counting one half (the Mann-Whitney U statistic
 * over the number of pairs). Computed from ranks in O(n log n).
 */
export function rocAuc(scores: readonly number[], positive: readonly boolean[]): number {
  if (scores.length !== positive.length) throw new Error(`rocAuc: ${scores.length} scores for ${positive.length} labels`);
  const order = scores.map((_, i) => i).sort((a, b) => (scores[a] as number) - (scores[b] as number));
  let positives = 0;
  let rankSum = 0;
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && scores[order[end + 1] as number] === scores[order[start] as number]) end++;
    // Tied scores share the mean of their ranks (1-based).
    const rank = (start + end + 2) / 2;
    for (let i = start; i <= end; i++) {
      if (positive[order[i] as number]) {
        positives++;
        rankSum += rank;
      }
    }
    start = end + 1;
  }
  const negatives = scores.length - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}
