// Chat prompts rendered by the model's Jinja template (tokenizer.chat_template) with
// @huggingface/jinja, or by a built-in template the request names.

import { Template } from '@huggingface/jinja';
import { TokenizerError } from './errors';

export interface ChatMessage {
  role: string;
  content: string;
}

/** Templates a request can name when the model has none (or to override it). */
export const BUILTIN_CHAT_TEMPLATES: Record<string, string> = {
  chatml:
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  llama3:
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + " +
    "message['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  llama2:
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}{% set turns = messages[1:] %}" +
    '{% else %}{% set system = none %}{% set turns = messages %}{% endif %}' +
    '{% for message in turns %}' +
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
    "{{ raise_exception('Llama 2 chat: roles must alternate user/assistant/user/...') }}{% endif %}" +
    "{% if message['role'] == 'user' %}" +
    "{% if loop.first and system is not none %}{% set text = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
    "{% else %}{% set text = message['content'] %}{% endif %}" +
    "{{ bos_token + '[INST] ' + text | trim + ' [/INST]' }}" +
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endif %}" +
    '{% endfor %}',
};

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new TokenizerError('CHAT_TEMPLATE_ERROR', `chat template does not parse: ${(e as Error).message}`);
    }
    if (compiled.size >= 64) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

export interface RenderOptions {
  addGenerationPrompt: boolean;
  bosToken: string;
  eosToken: string;
}

export function renderChatTemplate(source: string, messages: ChatMessage[], opts: RenderOptions): string {
  if (!Array.isArray(messages)) throw new TokenizerError('CHAT_TEMPLATE_ERROR', 'messages must be an array');
  for (const [i, m] of messages.entries()) {
    if (!m || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new TokenizerError('CHAT_TEMPLATE_ERROR', `message ${i} needs a string role and a string content`);
    }
  }
  const template = compile(source);
  try {
    return template.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: opts.addGenerationPrompt,
      bos_token: opts.bosToken,
      eos_token: opts.eosToken,
    });
  } catch (e) {
    throw new TokenizerError('CHAT_TEMPLATE_ERROR', `chat template failed: ${(e as Error).message}`);
  }
}
