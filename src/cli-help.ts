/** What `conflux --help` and `conflux COMMAND --help` print. */

/** The exit code of a command line that is not understood (an unknown command or option, a bad value). */
export const EXIT_USAGE = 2;

const COMMON_OPTIONS = `  -c, --config FILE      Config file (YAML, or JSON with "mcpServers")   [env CONFLUX_CONFIG, default ./mcp-servers.yaml]
      --dotenv FILE      Variables to read before starting; never over the real environment [default ./.env, when present]
  -h, --help             Show this help
`;

const ADMIN_TOKEN_OPTION = `      --admin-token KEY  A credential for a serving gateway with auth on: an admin's API key or bearer token [env CONFLUX_ADMIN_TOKEN]
`;

const THROUGH_A_GATEWAY = `While a gateway serves the embedded database, these go through its admin API; with gateway.auth
on, give an admin's API key or bearer token in CONFLUX_ADMIN_TOKEN (or --admin-token).
`;

interface CommandHelp {
  /** Lines for the command list of `conflux --help`. */
  summary: string;
  /** `conflux COMMAND --help`. */
  usage: string;
}

const COMMANDS: Record<string, CommandHelp> = {
  serve: {
    summary: `  serve                  Run the gateway (default)\n`,
    usage: `Usage: conflux serve [options]

Run the gateway: connect to the configured servers and serve them on one MCP endpoint.

Options:
  -H, --host HOST        Address to listen on                           [env CONFLUX_HOST, default 127.0.0.1]
  -p, --port PORT        Port to listen on                              [env CONFLUX_PORT, default 8000]
      --log-format F     pretty or json                                 [env LOG_FORMAT, default pretty on a terminal, else json]
${COMMON_OPTIONS}`,
  },
  validate: {
    summary: `  validate               Check the config file and list every problem\n`,
    usage: `Usage: conflux validate [options]

Check the config file and list every problem; exit 1 when there is one.

Options:
${COMMON_OPTIONS}`,
  },
  migrate: {
    summary: `  migrate                Apply database migrations and exit\n`,
    usage: `Usage: conflux migrate [options]

Apply pending database migrations (DATABASE_URL, or the embedded database in CONFLUX_DATA_DIR)
and say which were applied.

Options:
${COMMON_OPTIONS}`,
  },
  tools: {
    summary: `  tools                  Connect to the upstreams and print the merged tool list\n`,
    usage: `Usage: conflux tools [options]

Connect to the configured servers and print the merged tool list.

Options:
      --json             Print JSON instead of a table
${COMMON_OPTIONS}`,
  },
  call: {
    summary: `  call NAME              Call one tool through the gateway's routing\n`,
    usage: `Usage: conflux call NAME [--args JSON] [options]

Call one tool through the gateway's routing; the call is audited like any other.

Options:
  -a, --args JSON        The tool's arguments, as a JSON object
${ADMIN_TOKEN_OPTION}${COMMON_OPTIONS}`,
  },
  keys: {
    summary: `  keys create NAME       Create an API key (printed once) [--group G]... [--subject S] [--expires 30d|2027-01-01]
  keys list              List API keys (never the keys themselves)
  keys revoke ID|NAME    Revoke an API key
`,
    usage: `Usage: conflux keys create NAME [--group G]... [--subject S] [--expires 30d|2027-01-01]
       conflux keys list [--json]
       conflux keys revoke ID|NAME

Create (the key is printed once), list and revoke API keys.

Options:
      --group G          A group the key's holder belongs to (repeatable)
      --subject S        Who the key acts as                            [default key:NAME]
      --expires WHEN     A duration (30d, 12h, 90m) or a date
      --json             Print JSON instead of a table
${ADMIN_TOKEN_OPTION}${COMMON_OPTIONS}
${THROUGH_A_GATEWAY}`,
  },
  access: {
    summary: `  access list            List grants and tool rules
  access grant           Grant a level on a server: --user U | --group G, --server S|*, [--level read|call]
  access rule            Allow or deny tools: [--user U | --group G] [--server S] --allow GLOB | --deny GLOB
  access revoke ID       Remove a stored grant
  access remove-rule ID  Remove a stored tool rule
`,
    usage: `Usage: conflux access list [--json]
       conflux access grant (--user U | --group G) --server S|'*' [--level read|call]
       conflux access rule [--user U | --group G] [--server S] (--allow GLOB | --deny GLOB)
       conflux access revoke ID
       conflux access remove-rule ID

List and change who may use which server, and which tools.

Options:
      --user U           The user a grant or rule is for
      --group G          The group a grant or rule is for
      --server S         A server name, or * for every server
      --level L          read (list) or call (list and call)           [default call]
      --allow GLOB       Tools the rule allows
      --deny GLOB        Tools the rule denies
      --json             Print JSON instead of a table
${ADMIN_TOKEN_OPTION}${COMMON_OPTIONS}
${THROUGH_A_GATEWAY}`,
  },
  connections: {
    summary: `  connections list       Users' connections to per-user upstreams (never a token) [--user U]
  connections revoke S   Revoke a user's connection to server S: --user U (through a gateway,
                         without --user: the credential's own)
`,
    usage: `Usage: conflux connections list [--user U] [--json]
       conflux connections revoke SERVER [--user U]

List and revoke users' connections to servers with per-user credentials (never a token).

Options:
      --user U           Whose connections (through a gateway, revoke without --user: the credential's own)
      --json             Print JSON instead of a table
${ADMIN_TOKEN_OPTION}${COMMON_OPTIONS}
${THROUGH_A_GATEWAY}`,
  },
};

/** `conflux --help`: every command, and the options most of them take. */
export function globalUsage(): string {
  return `Usage: conflux <command> [options]

Commands:
${Object.values(COMMANDS)
  .map((command) => command.summary)
  .join('')}
Options:
  -H, --host HOST        "serve": address to listen on                  [env CONFLUX_HOST, default 127.0.0.1]
  -p, --port PORT        "serve": port to listen on                     [env CONFLUX_PORT, default 8000]
      --log-format F     "serve": pretty or json                        [env LOG_FORMAT, default pretty on a terminal]
  -a, --args JSON        "call": the tool's arguments, as a JSON object
      --json             "tools", "keys", "access", "connections": print JSON instead of a table
      --admin-token KEY  "keys", "access", "connections", "call": a credential for a serving gateway with auth on [env CONFLUX_ADMIN_TOKEN]
${COMMON_OPTIONS}      --version          Print the version

"conflux COMMAND --help" shows one command's options.
`;
}

/** `conflux COMMAND --help`, or undefined for a command that does not exist. */
export function commandUsage(command: string): string | undefined {
  return Object.hasOwn(COMMANDS, command) ? COMMANDS[command]!.usage : undefined;
}
