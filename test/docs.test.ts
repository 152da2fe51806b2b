/** Every public export of tollgate carries a doc comment (read with the TypeScript compiler). */
import ts from 'typescript';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('public API docs', () => {
  it('documents every export of src/index.ts', () => {
    const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const program = ts.createProgram([entry], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
    });
    const checker = program.getTypeChecker();
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
    const exports = checker.getExportsOfModule(moduleSymbol);
    const undocumented = exports
      .filter((e) => {
        const s = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
        return ts.displayPartsToString(s.getDocumentationComment(checker)).trim() === '';
      })
      .map((e) => e.name);
    expect(exports.length).toBeGreaterThan(40);
    expect(undocumented).toEqual([]);
  }, 60_000);
});
