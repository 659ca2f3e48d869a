/**
 * A no-op. Used twice by E2 so both sides do identical work: as the raw Piscina worker (the baseline)
 * and as the module tool the engine runs (the figure).
 */
export default function noop(): undefined {
  return undefined;
}
