/**
 * The emulator's stand-in for the forecasting model. Deterministic and simple enough that a test can compute the
 * expected prediction on its own, yet sensitive to every feature and to their order (a swapped or dropped feature
 * changes the result), so it catches rows scored with the wrong features.
 *
 *   prediction = round8( Σ_{i=0}^{n-1} (i+1)·f_i / n ),  n = number of features
 *
 * The sum is accumulated left to right in double precision, then divided by n; round8(x) = Number(x.toFixed(8)).
 */
export function predict(features: readonly number[]): number {
  const n = features.length;
  if (n === 0) throw new RangeError("predict: features must not be empty");
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const f = features[i] as number;
    if (typeof f !== "number" || !Number.isFinite(f)) {
      throw new TypeError(`predict: features[${i}] must be a finite number`);
    }
    sum += (i + 1) * f;
  }
  return round8(sum / n);
}

/** Rounds to 8 decimal places, the precision predictions.csv carries. */
export function round8(x: number): number {
  return Number(x.toFixed(8));
}

/** How predictions.csv writes a prediction: always 8 decimals, like the guide's `2.33394885`. */
export function formatPrediction(prediction: number): string {
  return prediction.toFixed(8);
}
