/**
 * Symmetric matrices stored packed: the lower triangle row by row, element (i, j) with j ≤ i at
 * `i * (i + 1) / 2 + j`. Half the memory of a square array, and a matrix can grow by one row without moving
 * the others (a new signal appends its row).
 *
 * Every function here is named `packed…`: the daemon runs without V8's optimising compiler (`--no-opt`), and
 * `--turbo-filter=packed*` in its place optimises these and nothing else (docs/service.md says what that trades).
 */

/** Packed length of an n×n symmetric matrix. */
export function packedLength(n: number): number {
  return (n * (n + 1)) / 2;
}

/** Index of (i, j) in either order. */
export function at(i: number, j: number): number {
  return i >= j ? (i * (i + 1)) / 2 + j : (j * (j + 1)) / 2 + i;
}

/** In place: a (packed, symmetric) → its Cholesky factor L (packed lower), a = L·Lᵀ. False when a is not positive definite. */
export function packedCholesky(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = (j * (j + 1)) / 2;
    let d = a[rj + j]!;
    for (let k = 0; k < j; k++) d -= a[rj + k]! * a[rj + k]!;
    if (!(d > 1e-12)) return false;
    d = Math.sqrt(d);
    a[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = (i * (i + 1)) / 2;
      let s = a[ri + j]!;
      for (let k = 0; k < j; k++) s -= a[ri + k]! * a[rj + k]!;
      a[ri + j] = s / d;
    }
  }
  return true;
}

/** The inverse of L·Lᵀ from its Cholesky factor L (both packed): M = L⁻¹, then P = Mᵀ·M. O(n³/2). */
export function packedInverseFromCholesky(l: Float64Array, n: number): Float64Array {
  const m = new Float64Array(packedLength(n));
  for (let i = 0; i < n; i++) {
    const ri = (i * (i + 1)) / 2;
    m[ri + i] = 1 / l[ri + i]!;
    for (let j = 0; j < i; j++) {
      // (L·M)(i, j) = 0 for j < i: Σ_k L(i,k)·M(k,j), k = j..i.
      let s = 0;
      for (let k = j; k < i; k++) s += l[ri + k]! * m[(k * (k + 1)) / 2 + j]!;
      m[ri + j] = -s / l[ri + i]!;
    }
  }
  const p = new Float64Array(packedLength(n));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      // P(i, j) = Σ_k M(k,i)·M(k,j) over k ≥ i (M is lower triangular).
      let s = 0;
      for (let k = i; k < n; k++) {
        const rk = (k * (k + 1)) / 2;
        s += m[rk + i]! * m[rk + j]!;
      }
      p[(i * (i + 1)) / 2 + j] = s;
    }
  }
  return p;
}

/** out = P·z for a packed symmetric P. */
export function packedSymMatVec(p: Float64Array, z: Float64Array, n: number, out: Float64Array): void {
  out.fill(0, 0, n);
  for (let i = 0; i < n; i++) {
    const ri = (i * (i + 1)) / 2;
    const zi = z[i]!;
    let s = 0;
    for (let j = 0; j < i; j++) {
      const v = p[ri + j]!;
      s += v * z[j]!;
      out[j]! += v * zi;
    }
    out[i]! += s + p[ri + i]! * zi;
  }
}
