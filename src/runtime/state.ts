/**
 * Decoding state as plain Float32Arrays, one per state tensor, for one sequence. A state tensor is
 * either fixed in size (recurrent state, convolution state, a local-attention window) or grows
 * along one axis with the sequence (a KV cache). Batches are assembled by concatenation; growing
 * tensors are left-padded to the longest sequence, which the graphs mask (by position, or by the
 * attention mask of Hugging Face exports).
 */

export interface StateLayout {
  past: string;
  present: string;
  /** Dimensions of one sequence's tensor, without the batch axis; the growing axis holds 0. */
  dims: number[];
  /** Index in `dims` of the axis that grows with the sequence, or null for fixed-size state. */
  growAxis: number | null;
}

/** Elements of one sequence's tensor at a given length. */
export function stateSize(layout: StateLayout, length: number): number {
  return layout.dims.reduce((product, dim, axis) => product * (axis === layout.growAxis ? length : dim), 1);
}

/** Sizes of the axes before and after the growing axis: a growing tensor is [outer, length, inner]. */
function splitAroundGrowAxis(layout: StateLayout): { outer: number; inner: number } {
  const axis = layout.growAxis as number;
  const outer = layout.dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = layout.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  return { outer, inner };
}

/** A batch tensor from one tensor per sequence; growing tensors right-aligned to `maxLength`. */
export function batchState(layout: StateLayout, tensors: readonly Float32Array[], lengths: readonly number[], maxLength: number): Float32Array {
  if (layout.growAxis === null) {
    const size = stateSize(layout, 0);
    const batch = new Float32Array(size * tensors.length);
    tensors.forEach((tensor, b) => batch.set(tensor, b * size));
    return batch;
  }
  const { outer, inner } = splitAroundGrowAxis(layout);
  const batch = new Float32Array(tensors.length * outer * maxLength * inner);
  tensors.forEach((tensor, b) => {
    const length = lengths[b] as number;
    for (let o = 0; o < outer; o++) {
      const source = tensor.subarray(o * length * inner, (o + 1) * length * inner);
      batch.set(source, ((b * outer + o) * maxLength + (maxLength - length)) * inner);
    }
  });
  return batch;
}

/**
 * One sequence's tensor out of a batch output. Fixed-size state is a view on the output (never
 * written to afterwards, so forks can share it); growing state is copied out of its padding.
 */
export function unbatchState(layout: StateLayout, batch: Float32Array, b: number, length: number, batchLength: number): Float32Array {
  if (layout.growAxis === null) {
    const size = stateSize(layout, 0);
    return batch.subarray(b * size, (b + 1) * size);
  }
  const { outer, inner } = splitAroundGrowAxis(layout);
  const tensor = new Float32Array(outer * length * inner);
  for (let o = 0; o < outer; o++) {
    const start = ((b * outer + o) * batchLength + (batchLength - length)) * inner;
    tensor.set(batch.subarray(start, start + length * inner), o * length * inner);
  }
  return tensor;
}
