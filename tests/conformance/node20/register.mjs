// Use with: NODE_OPTIONS="--import ./tests/conformance/node20/register.mjs" npx conformance ...
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
