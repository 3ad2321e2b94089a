// Chat prompts: the model's Jinja template (tokenizer.chat_template) or a named one,
// rendered by @huggingface/jinja; a model without one needs a name.
import { readGgufMetadata } from '../server/src/engine/gguf';
import type { GgufValue } from '../server/src/engine/types';
import { Tokenizer } from '../server/src/tokenizer';
import { tokenizerFor, vocabPath } from './tokenizer-helpers';
import { codeOf } from './helpers/errors';

const conversation = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi!' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'How are you?' },
];

function gpt2With(overrides: Record<string, GgufValue>): Tokenizer {
  const base = readGgufMetadata(vocabPath('gpt-2'));
  return Tokenizer.fromMetadata({ ...base, metadata: { ...base.metadata, ...overrides } });
}

test('ChatML', () => {
  const tok = tokenizerFor('gpt-2');
  expect(tok.renderChat(conversation, { template: 'chatml' })).toBe(
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n' +
      '<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n',
  );
  expect(tok.renderChat(conversation.slice(0, 2), { template: 'chatml', addGenerationPrompt: false })).toBe(
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n',
  );
});

test('Llama 3: BOS from the vocabulary, contents trimmed', () => {
  const tok = tokenizerFor('gpt-2'); // its BOS text is <|endoftext|>
  expect(tok.renderChat([{ role: 'user', content: '  Hi!\n' }], { template: 'llama3' })).toBe(
    '<|endoftext|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>' +
      '<|start_header_id|>assistant<|end_header_id|>\n\n',
  );
});

test('Llama 2: system prompt folded into the first user turn, roles must alternate', () => {
  const tok = tokenizerFor('llama-spm');
  expect(tok.renderChat(conversation, { template: 'llama2' })).toBe(
    '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST] Hello. </s><s>[INST] How are you? [/INST]',
  );
  const bad = () => tok.renderChat([{ role: 'assistant', content: 'x' }], { template: 'llama2' });
  expect(codeOf(bad)).toBe('CHAT_TEMPLATE_ERROR');
  expect(bad).toThrow(/alternate/);
});

test("the model's own template is used by default, a named one overrides it", () => {
  const tmpl =
    "{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}";
  const tok = gpt2With({ 'tokenizer.chat_template': tmpl });
  expect(tok.hasChatTemplate()).toBe(true);
  expect(tok.renderChat(conversation.slice(1, 2))).toBe('[USER] Hi!\n[ASSISTANT]');
  expect(tok.renderChat(conversation.slice(1, 2), { template: 'chatml' })).toBe(
    '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n',
  );
  // a request may also bring its own Jinja source
  expect(tok.renderChat(conversation.slice(1, 2), { template: '{{ messages[0].content }}!' })).toBe('Hi!!');
});

test('no template and no name: a clear error', () => {
  const tok = tokenizerFor('llama-spm');
  expect(tok.hasChatTemplate()).toBe(false);
  const missing = () => tok.renderChat(conversation);
  expect(codeOf(missing)).toBe('CHAT_TEMPLATE_MISSING');
  expect(missing).toThrow(/chatml, llama3, llama2/);
  expect(codeOf(() => tok.renderChat(conversation, { template: '{% for %}' }))).toBe('CHAT_TEMPLATE_ERROR');
  expect(codeOf(() => tok.renderChat([{ role: 'user' } as never], { template: 'chatml' }))).toBe('CHAT_TEMPLATE_ERROR');
});

test('encodeChat: control tokens parsed, one BOS even when the template writes one', () => {
  const spm = tokenizerFor('llama-spm');
  const ids = spm.encodeChat(conversation.slice(1, 2), { template: 'llama2' });
  expect(ids.filter((id) => id === 1)).toEqual([1]);
  expect(ids[0]).toBe(1);
  expect(spm.decode(ids, { special: true })).toBe('<s> [INST] Hi! [/INST]');

  // a vocabulary with ChatML's tokens: they come out as single ids
  const base = readGgufMetadata(vocabPath('gpt-2'));
  const tokens = [...(base.metadata['tokenizer.ggml.tokens'] as string[])];
  tokens[50254] = '<|im_start|>';
  tokens[50255] = '<|im_end|>';
  const types = Int32Array.from(base.metadata['tokenizer.ggml.token_type'] as Int32Array);
  types[50254] = 3;
  types[50255] = 3;
  const chatml = gpt2With({ 'tokenizer.ggml.tokens': tokens, 'tokenizer.ggml.token_type': types });
  const chatIds = chatml.encodeChat([{ role: 'user', content: 'Hi' }], { template: 'chatml' });
  expect(chatIds).toEqual([
    50254, ...chatml.encode('user\nHi'), 50255, ...chatml.encode('\n'), 50254, ...chatml.encode('assistant\n'),
  ]);
  expect(chatml.isEndOfGeneration(50255)).toBe(true);
});
