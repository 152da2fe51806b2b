/** GitHub's anchor for a heading. */
export function slug(heading: string): string;
/** The table of contents of `markdown`'s ## and ### headings. */
export function buildToc(markdown: string): string;
/** `markdown` with its table of contents regenerated. */
export function withToc(markdown: string): string;
