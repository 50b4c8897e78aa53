/** The current time in Unix seconds, as a float (the unit of Python's `time.time()`). */
export function nowSeconds(): number {
  return Date.now() / 1000;
}
