/**
 * A tiny recursive-descent evaluator for the arithmetic in synthetic solutions: integers and
 * decimals, + - * /, parentheses, unary minus, the variable x and implicit multiplication (`3x`,
 * `2(x + 1)`). It evaluates while it parses, in exact rational arithmetic.
 *
 *   expr   = term (("+" | "-") term)*
 *   term   = unary (("*" | "/") unary | primary-starting-with-"x"-or-"(")*
 *   unary  = ("-" | "+") unary | primary
 *   primary = number | "x" | "(" expr ")"
 */
import { Rational } from "./rational.js";

const SPACE = new Set([" ", "\t", "\n", "\r"]);
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";

/** The text is not an expression this grammar accepts, or it divides by zero. */
export class ExpressionError extends Error {
  override name = "ExpressionError";
}

/** Evaluates `text`; `x` is the value of the variable, or undefined when x may not appear. */
export function evaluate(text: string, x?: Rational): Rational {
  return new Evaluator(text, x).run();
}

class Evaluator {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly x: Rational | undefined,
  ) {}

  run(): Rational {
    const value = this.expr();
    this.skipSpace();
    if (this.pos < this.text.length) throw this.unexpected();
    return value;
  }

  private expr(): Rational {
    let value = this.term();
    for (;;) {
      const op = this.peek();
      if (op !== "+" && op !== "-") return value;
      this.pos++;
      const right = this.term();
      value = op === "+" ? value.add(right) : value.sub(right);
    }
  }

  private term(): Rational {
    let value = this.unary();
    for (;;) {
      const op = this.peek();
      if (op === "*") {
        this.pos++;
        value = value.mul(this.unary());
      } else if (op === "/") {
        this.pos++;
        const divisor = this.unary();
        if (divisor.isZero()) throw new ExpressionError("division by zero");
        value = value.div(divisor);
      } else if (op === "x" || op === "(") {
        value = value.mul(this.primary());
      } else {
        return value;
      }
    }
  }

  private unary(): Rational {
    const op = this.peek();
    if (op === "-") {
      this.pos++;
      return this.unary().neg();
    }
    if (op === "+") {
      this.pos++;
      return this.unary();
    }
    return this.primary();
  }

  private primary(): Rational {
    const c = this.peek();
    if (c === "(") {
      this.pos++;
      const value = this.expr();
      if (this.peek() !== ")") throw this.unexpected("')'");
      this.pos++;
      return value;
    }
    if (c === "x") {
      this.pos++;
      if (this.x === undefined) throw new ExpressionError("x has no value in this problem");
      return this.x;
    }
    if (isDigit(c)) return this.number();
    throw this.unexpected("a number, x or '('");
  }

  private number(): Rational {
    const start = this.pos;
    this.skipDigits();
    if (this.text[this.pos] !== "." || !isDigit(this.text[this.pos + 1])) {
      return Rational.from(BigInt(this.text.slice(start, this.pos)));
    }
    const point = this.pos++;
    this.skipDigits();
    const fraction = this.text.slice(point + 1, this.pos);
    return Rational.from(BigInt(this.text.slice(start, point) + fraction), 10n ** BigInt(fraction.length));
  }

  private skipDigits(): void {
    while (isDigit(this.text[this.pos])) this.pos++;
  }

  /** The next non-space character (consumed spaces only), or undefined at the end. */
  private peek(): string | undefined {
    this.skipSpace();
    return this.text[this.pos];
  }

  private skipSpace(): void {
    while (SPACE.has(this.text[this.pos] ?? "")) this.pos++;
  }

  private unexpected(expected?: string): ExpressionError {
    const found = this.pos < this.text.length ? `'${this.text[this.pos]}'` : "end of text";
    return new ExpressionError(`unexpected ${found} at column ${this.pos + 1}${expected ? `, expected ${expected}` : ""}`);
  }
}
