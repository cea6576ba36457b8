/** Exact rational numbers over BigInt, always reduced with a positive denominator. */

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export class Rational {
  readonly num: bigint;
  readonly den: bigint;

  constructor(num: bigint, den: bigint = 1n) {
    if (den === 0n) throw new RangeError("division by zero");
    if (den < 0n) {
      num = -num;
      den = -den;
    }
    const g = den === 1n ? 1n : gcd(num, den);
    this.num = g > 1n ? num / g : num;
    this.den = g > 1n ? den / g : den;
  }

  static of(value: number): Rational {
    return new Rational(BigInt(value));
  }

  add(other: Rational): Rational {
    return new Rational(this.num * other.den + other.num * this.den, this.den * other.den);
  }

  sub(other: Rational): Rational {
    return new Rational(this.num * other.den - other.num * this.den, this.den * other.den);
  }

  mul(other: Rational): Rational {
    return new Rational(this.num * other.num, this.den * other.den);
  }

  div(other: Rational): Rational {
    return new Rational(this.num * other.den, this.den * other.num);
  }

  neg(): Rational {
    return new Rational(-this.num, this.den);
  }

  equals(other: Rational): boolean {
    return this.num === other.num && this.den === other.den;
  }

  isZero(): boolean {
    return this.num === 0n;
  }

  /** `7`, `-3/4`: the plain form used inside solution steps. */
  toString(): string {
    return this.den === 1n ? String(this.num) : `${this.num}/${this.den}`;
  }

  /** `7`, `\frac{3}{4}`, `-\frac{3}{4}`: the MATH form used in `\boxed{}` answers. */
  toLatex(): string {
    if (this.den === 1n) return String(this.num);
    const sign = this.num < 0n ? "-" : "";
    const abs = this.num < 0n ? -this.num : this.num;
    return `${sign}\\frac{${abs}}{${this.den}}`;
  }
}
