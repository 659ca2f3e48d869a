import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCode, StoreErrorCode } from 'jaf-workflows';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every error code in its table', () => {
    const documented = [...readme.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]).filter((code) => !code!.startsWith('STORE_'));
    expect(documented.sort()).toEqual(Object.values(ErrorCode).sort());
  });

  it('documents every store error code', () => {
    const documented = [...readme.matchAll(/^\| `(STORE_[A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.values(StoreErrorCode).sort());
  });

  it('starts with the install-and-start command and the test command', () => {
    const firstBlock = readme.slice(readme.indexOf('```sh'), readme.indexOf('```', readme.indexOf('```sh') + 5));
    expect(firstBlock).toContain('npm install && npm start');
    expect(firstBlock).toContain('npm test');
  });
});
