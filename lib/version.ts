/** emfleet's version, as in package.json (a test keeps the two equal); agents report it in /status. */
export const emfleetVersion = '0.1.0';
