// The capacity bench (bench/capacity.ts) for this server on Moonshine base, recorded as a bench
// of its own, against this server on tiny in the same run:
// `npm run bench -- capacity-base [--scenario=... --steps=...]`.
process.argv.push('--model=moonshine-base');
await import('./capacity.js');
