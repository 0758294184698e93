// Failures the clients report as one line on stderr, with the exit code they end with.

/** A failure to report and exit with: 1 for a failed run, 2 for a bad command line or input. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1, readonly code = 'FAILED') {
    super(message);
    this.name = 'CliError';
  }
}

/** A bad command line, flag value or input file: exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2, 'USAGE');
    this.name = 'UsageError';
  }
}
