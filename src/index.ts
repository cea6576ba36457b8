/** The public library API of deliberate. */
export { Random } from "./random.js";
export { InputError } from "./errors.js";
