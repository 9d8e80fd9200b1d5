/** The runner's version, reported in `hello`. */
export const VERSION = "0.1.0";
