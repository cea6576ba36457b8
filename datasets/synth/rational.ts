/**
 * Exact rational numbers for the synthetic task's checker: mathjs fractions (arbitrary-size
 * integers, always reduced, the sign on the numerator) from the project's restricted mathjs
 * instance, behind the small interface the checker and the expression evaluator use.
 */
import { restrictedMath, type Fraction } from "../mathjs.js";

export class Rational {
  private constructor(private readonly value: Fraction) {}

  /** `num / den`; a zero denominator is a RangeError. */
  static from(num: bigint, den: bigint = 1n): Rational {
    if (den === 0n) throw new RangeError("division by zero");
    return new Rational(restrictedMath().fraction(num, den));
  }

  static of(value: number): Rational {
    return Rational.from(BigInt(value));
  }

  /** The numerator, with the sign. */
  get num(): bigint {
    return this.value.s * this.value.n;
  }

  /** The denominator, positive. */
  get den(): bigint {
    return this.value.d;
  }

  add(other: Rational): Rational {
    return new Rational(this.value.add(other.value));
  }

  sub(other: Rational): Rational {
    return new Rational(this.value.sub(other.value));
  }

  mul(other: Rational): Rational {
    return new Rational(this.value.mul(other.value));
  }

  div(other: Rational): Rational {
    if (other.isZero()) throw new RangeError("division by zero");
    return new Rational(this.value.div(other.value));
  }

  neg(): Rational {
    return new Rational(this.value.neg());
  }

  equals(other: Rational): boolean {
    return this.value.equals(other.value);
  }

  isZero(): boolean {
    return this.value.n === 0n;
  }

  /** `7`, `-3/4`: the plain form used inside solution steps. */
  toString(): string {
    return this.den === 1n ? String(this.num) : `${this.num}/${this.den}`;
  }

  /** `7`, `\frac{3}{4}`, `-\frac{3}{4}`: the MATH form used in `\boxed{}` answers. */
  toLatex(): string {
    if (this.den === 1n) return String(this.num);
    return `${this.num < 0n ? "-" : ""}\\frac{${this.value.n}}{${this.den}}`;
  }
}
