// A strict little XML reader for tests of generated SVG/XHTML: elements,
// attributes (quoted), text, comments, the five predefined entities and
// character references. Anything not well-formed throws with its offset.
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Text directly inside this element, entities decoded. */
  text: string;
}

const NAME = /^[A-Za-z_:][-A-Za-z0-9_:.]*/;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(raw: string, at: number): string {
  return raw.replace(/&([^;&\s]*);?/g, (whole, body: string) => {
    if (!whole.endsWith(';')) throw new Error(`bare '&' at ${at}`);
    if (body in ENTITIES) return ENTITIES[body];
    const m = /^#(x[0-9a-fA-F]+|[0-9]+)$/.exec(body);
    if (!m) throw new Error(`unknown entity &${body}; at ${at}`);
    return String.fromCodePoint(m[1][0] === 'x' ? parseInt(m[1].slice(1), 16) : Number(m[1]));
  });
}

/** Parses one XML document (an optional <?xml ...?> prolog, one root element). */
export function parseXml(doc: string): XmlElement {
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  const fail = (why: string): never => {
    throw new Error(`${why} at offset ${i}: ${JSON.stringify(doc.slice(i, i + 40))}`);
  };
  while (i < doc.length) {
    const lt = doc.indexOf('<', i);
    const text = doc.slice(i, lt < 0 ? doc.length : lt);
    if (text.includes('>')) fail("stray '>'");
    if (stack.length > 0) stack[stack.length - 1].text += decode(text, i);
    else if (text.trim() !== '') fail('text outside the root element');
    if (lt < 0) break;
    i = lt;
    if (doc.startsWith('<!--', i)) {
      const end = doc.indexOf('-->', i + 4);
      if (end < 0) fail('unterminated comment');
      i = end + 3;
    } else if (doc.startsWith('<?', i)) {
      const end = doc.indexOf('?>', i);
      if (end < 0 || root || stack.length) fail('misplaced processing instruction');
      i = end + 2;
    } else if (doc.startsWith('</', i)) {
      const m = NAME.exec(doc.slice(i + 2));
      const open = stack.pop();
      if (!m || !open || m[0] !== open.name) fail(`mismatched end tag (open: ${open?.name})`);
      i += 2 + m![0].length;
      while (/\s/.test(doc[i])) i++;
      if (doc[i] !== '>') fail("expected '>'");
      i++;
    } else {
      const m = NAME.exec(doc.slice(i + 1));
      if (!m) fail('bad tag name');
      if (stack.length === 0 && root) fail('a second root element');
      const el: XmlElement = { name: m![0], attrs: {}, children: [], text: '' };
      i += 1 + m![0].length;
      for (;;) {
        const ws = /^\s*/.exec(doc.slice(i))![0].length;
        i += ws;
        if (doc.startsWith('/>', i) || doc[i] === '>') break;
        if (ws === 0) fail('expected whitespace before an attribute');
        const a = /^([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(doc.slice(i));
        if (!a) fail('bad attribute');
        if (a![1] in el.attrs) fail(`duplicate attribute ${a![1]}`);
        el.attrs[a![1]] = decode(a![3] ?? a![4], i);
        i += a![0].length;
      }
      if (stack.length > 0) stack[stack.length - 1].children.push(el);
      else root = el;
      if (doc.startsWith('/>', i)) i += 2;
      else {
        i += 1;
        stack.push(el);
      }
    }
  }
  if (stack.length > 0) throw new Error(`unclosed element <${stack[stack.length - 1].name}>`);
  if (!root) throw new Error('no root element');
  return root;
}

/** Every element below (and including) `el`, depth first. */
export function allElements(el: XmlElement): XmlElement[] {
  return [el, ...el.children.flatMap(allElements)];
}
