-- The three default prompts and the models of the eight providers, with
-- their list prices in US dollars per million input and output tokens.

INSERT INTO prompts (name, template) VALUES
    ('business_analysis',
     'What is {domain}? Describe the business behind it: what it offers, '
     'who its customers are and how it makes money.'),
    ('content_strategy',
     'How does {domain} reach people? Describe its content, marketing and '
     'distribution strategy and the audience it speaks to.'),
    ('technical_assessment',
     'How good is the technology of {domain}? Assess its product, '
     'engineering, reliability and security as far as you know them.')
ON CONFLICT (name) DO NOTHING;

INSERT INTO models (provider, model, input_price_mtok, output_price_mtok)
VALUES
    ('openai',     'gpt-4o-mini',                             0.15,  0.60),
    ('anthropic',  'claude-3-5-haiku-20241022',               0.80,  4.00),
    ('google',     'gemini-1.5-flash',                        0.075, 0.30),
    ('mistral',    'mistral-small-latest',                    0.20,  0.60),
    ('deepseek',   'deepseek-chat',                           0.27,  1.10),
    ('together',   'meta-llama/Llama-3.3-70B-Instruct-Turbo', 0.88,  0.88),
    ('xai',        'grok-3-mini',                             0.30,  0.50),
    ('perplexity', 'sonar',                                   1.00,  1.00)
ON CONFLICT (provider, model) DO NOTHING;
