"""The command tree that TAB completion answers from (kfcli._complete), without importing
Typer. Generated from the Typer app by `python -m kfcli.cli.completion`: do not edit."""
# ruff: noqa: E501

FORMATS = ('table', 'tsv', 'json', 'jsonl', 'wide')

FIELDS = (('corp_id', 'KFCLI_CORP_ID'), ('secret', 'KFCLI_SECRET'), ('token', 'KFCLI_TOKEN'), ('aes_key', 'KFCLI_AES_KEY'), ('base_url', 'KFCLI_BASE_URL'), ('store', 'KFCLI_STORE'), ('retention_days', 'KFCLI_RETENTION_DAYS'), ('ca_bundle', 'KFCLI_CA_BUNDLE'), ('token_previous', 'KFCLI_TOKEN_PREVIOUS'), ('aes_key_previous', 'KFCLI_AES_KEY_PREVIOUS'))

TREE = {
    'options': (
        (('--version', '-V'), None, 'Show the version, the store schema it writes (and the commit, from a checkout),…', False),
        (('--profile', '-p'), 'profile', 'Profile to use', False),
        (('--sandbox',), None, 'Run against the embedded WeCom simulator (state kept in the user data dir)', False),
        (('--debug',), None, 'Trace HTTP requests on stderr (secrets redacted)', False),
        (('--no-pager',), None, 'Do not page long output on a terminal (the pager: KFCLI_PAGER, else PAGER, else…', False),
        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
        (('--json',), None, 'Short for --output json', False),
        (('--help', '-h'), None, 'Show help and exit', False),
    ),
    'commands': {
        'config': {
            'help': 'Manage profiles: corp id, secret, callback token and key, base URL, message sto…',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'set': {
                    'help': 'Set a value in the current profile (created if missing)',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('key', 'key', 1),
                        ('value', 'text', 1),
                    ),
                },
                'get': {
                    'help': 'Print one value of the current profile (secrets masked)',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('key', 'key', 1),
                    ),
                },
                'unset': {
                    'help': 'Remove one value from the current profile',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('key', 'key', 1),
                    ),
                },
                'list': {
                    'help': 'List profiles and which settings each one has; the one in effect is marked',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'show': {
                    'help': 'Show every value of a profile (secrets masked)',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('name', 'profile', 1),
                    ),
                },
                'use': {
                    'help': 'Make a profile the current one',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('name', 'profile', 1),
                    ),
                },
                'remove': {
                    'help': 'Delete a profile and everything stored in it',
                    'options': (
                        (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('name', 'profile', 1),
                    ),
                },
            },
        },
        'auth': {
            'help': 'Inspect credentials and the access-token cache',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'status': {
                    'help': 'Show each setting, where it comes from (flag, env, profile, default), and the t…',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'token': {
                    'help': 'Get an access token (from the cache, or gettoken) and show it masked with its e…',
                    'options': (
                        (('--refresh',), None, 'Fetch a new token even if the cached one is still valid', False),
                        (('--raw',), None, 'Print the bare access token (unmasked: see the warning below)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'logout': {
                    'help': 'Drop the cached access token (the profile itself is kept)',
                    'options': (
                        (('--all',), None, 'Drop every cached token, of every profile', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
            },
        },
        'account': {
            'help': 'List, create, rename and delete KF accounts',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'list': {
                    'help': 'List KF accounts (POST with offset/limit, so more than 100 accounts are reachab…',
                    'options': (
                        (('--all',), None, 'Page through every account', False),
                        (('--limit',), 'text', 'Accounts to show, 1-100 (default 100; not with --all)', False),
                        (('--offset',), 'text', 'Accounts to skip (default 0; not with --all)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'add': {
                    'help': 'Create a KF account with a name and an avatar',
                    'options': (
                        (('--name',), 'text', 'Account name, 1-16 characters', False),
                        (('--avatar',), 'file', 'Avatar image (JPG/PNG, up to 10 MB), uploaded first', False),
                        (('--media-id',), 'text', 'Avatar as an already uploaded image media_id', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'update': {
                    'help': 'Rename an account or change its avatar',
                    'options': (
                        (('--name',), 'text', 'Account name, 1-16 characters', False),
                        (('--avatar',), 'file', 'Avatar image (JPG/PNG, up to 10 MB), uploaded first', False),
                        (('--media-id',), 'text', 'Avatar as an already uploaded image media_id', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
                'delete': {
                    'help': 'Delete a KF account',
                    'options': (
                        (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
            },
        },
        'link': {
            'help': 'Create contact links for KF accounts',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'create': {
                    'help': 'Create a contact URL for an account (add_contact_way); embed it in a page or a…',
                    'options': (
                        (('--scene',), 'text', 'Scene value: up to 32 bytes of [0-9a-zA-Z_-]', False),
                        (('--scene-param',), 'text', 'Extra value appended to the URL (up to 128 bytes before URL-encoding); needs --…', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
            },
        },
        'servicer': {
            'help': 'List, add and remove servicers of a KF account',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'list': {
                    'help': 'List the servicers of an account',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
                'add': {
                    'help': 'Add members or departments as servicers of an account',
                    'options': (
                        (('--department', '-d'), 'text', 'Department id (repeatable)', True),
                        (('--from',), 'file', "Also read ids from FILE, one per line ('-' for stdin)", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('userids', 'text', -1),
                    ),
                },
                'remove': {
                    'help': 'Remove servicers from an account',
                    'options': (
                        (('--department', '-d'), 'text', 'Department id (repeatable)', True),
                        (('--from',), 'file', "Also read ids from FILE, one per line ('-' for stdin)", False),
                        (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('userids', 'text', -1),
                    ),
                },
            },
        },
        'state': {
            'help': 'Read and change the session state of a customer',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'get': {
                    'help': 'Show the session state (0-4) and, in state 3, the servicer',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('external_userid', 'external_userid', 1),
                    ),
                },
                'trans': {
                    'help': 'Move a session to another state (queue it, assign a servicer, end it)',
                    'options': (
                        (('--servicer',), 'text', 'Servicer userid (required for state servicer/3)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('external_userid', 'external_userid', 1),
                        ('target', (('new', '0'), ('assistant', '1'), ('pool', '2'), ('servicer', '3'), ('ended', '4')), 1),
                    ),
                },
            },
        },
        'msg': {
            'help': 'Send messages; pull them into the store (`msg sync`) and read it (`msg history`)',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'send': {
                    'help': 'Send a message to a customer, or one per JSON line with --batch',
                    'options': (
                        (('--text',), '@file', 'Text, up to 2048 bytes; @FILE or - (stdin) to read it, @@ for a leading @', False),
                        (('--image',), 'file', 'Image file (JPG/PNG)', False),
                        (('--voice',), 'file', 'Voice file (AMR, 2 MB)', False),
                        (('--video',), 'file', 'Video file (MP4, 10 MB)', False),
                        (('--file',), 'file', 'Any file, up to 20 MB', False),
                        (('--link',), 'text', 'Link URL (with --title, --thumb, --desc)', False),
                        (('--miniprogram',), 'text', 'Mini program appid (with --title, --pagepath, --thumb)', False),
                        (('--menu',), '@file', 'Menu JSON: @FILE, - (stdin) or the JSON itself', False),
                        (('--location',), 'text', 'LAT,LNG (with --name, --address)', False),
                        (('--ca-link',), 'text', 'Customer-acquisition link URL (获客链接)', False),
                        (('--payload',), '@file', 'Raw body {"msgtype": …, <msgtype>: {…}} as JSON, @FILE or -', False),
                        (('--title',), 'text', 'Title for --link / --miniprogram', False),
                        (('--desc',), 'text', 'Description for --link', False),
                        (('--pagepath',), 'text', 'Page for --miniprogram', False),
                        (('--thumb',), 'file', 'Cover image file for --link / --miniprogram', False),
                        (('--thumb-media-id',), 'text', 'Cover as an uploaded media_id', False),
                        (('--name',), 'text', 'Place name for --location', False),
                        (('--address',), 'text', 'Address for --location', False),
                        (('--msgid',), 'text', 'Your own msgid (up to 32 bytes of [0-9a-zA-Z_-]); default: generated', False),
                        (('--reply-to',), 'text', 'The customer message this answers: the msgid is derived from it, so sending the…', False),
                        (('--reply-number',), 'text', 'With --reply-to: which answer to that message this is (WeCom allows 5)', False),
                        (('--batch',), 'file', 'Send one message per JSON line of FILE (- for stdin) as the lines arrive; one J…', False),
                        (('--parallel',), 'text', "With --batch: sends at once (one customer's messages stay in order)", False),
                        (('--dry-run',), None, 'Print the request body and send nothing (files are not uploaded)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('external_userid', 'external_userid', 1),
                    ),
                },
                'send-on-event': {
                    'help': 'Answer an event code: a welcome message, a queue notice, closing words',
                    'options': (
                        (('--text',), '@file', 'Text, up to 2048 bytes; @FILE or - (stdin) to read it, @@ for a leading @', False),
                        (('--menu',), '@file', 'Menu JSON: @FILE, - or JSON', False),
                        (('--msgid',), 'text', 'Your own msgid (up to 32 bytes of [0-9a-zA-Z_-]); default: generated', False),
                        (('--dry-run',), None, 'Print the request body and send nothing (files are not uploaded)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('code', 'text', 1),
                    ),
                },
                'export': {
                    'help': 'Write stored messages to a CSV, JSON lines or HTML file',
                    'options': (
                        (('--format',), 'text', 'What to write: csv (for spreadsheets), jsonl (the raw messages) or html (a page…', False),
                        (('-O', '--output-file'), 'file', "Write to FILE ('-': stdout)", False),
                        (('--account',), 'open_kfid', 'Only this account (default: every account of the corp)', False),
                        (('--customer',), 'external_userid', "Only this customer's messages", False),
                        (('--since',), 'text', 'Messages sent at or after WHEN', False),
                        (('--until',), 'text', 'Messages sent before WHEN', False),
                        (('--force',), None, 'Replace an existing FILE', False),
                        (('--media-dir',), 'text', 'With --format html: copy archived voice, video and files into DIR (created if m…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'inbox': {
                    'help': 'Conversations waiting for an answer, most urgent first',
                    'options': (
                        (('--limit',), 'text', 'At most N conversations, most urgent first (default 100)', False),
                        (('--all',), None, 'Every waiting conversation', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
                'reply': {
                    'help': 'Answer a stored customer message: its account and customer, a derived msgid',
                    'options': (
                        (('--text',), '@file', 'Text, up to 2048 bytes; @FILE or - (stdin) to read it, @@ for a leading @', False),
                        (('--image',), 'file', 'Image file (JPG/PNG)', False),
                        (('--voice',), 'file', 'Voice file (AMR, 2 MB)', False),
                        (('--video',), 'file', 'Video file (MP4, 10 MB)', False),
                        (('--file',), 'file', 'Any file, up to 20 MB', False),
                        (('--menu',), '@file', 'Menu JSON: @FILE, - (stdin) or the JSON itself', False),
                        (('--payload',), '@file', 'Raw body {"msgtype": …, <msgtype>: {…}} as JSON, @FILE or -', False),
                        (('--reply-number',), 'text', 'Which answer to that message this is (WeCom allows 5)', False),
                        (('--dry-run',), None, 'Print the request body and send nothing', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('msgid', 'text', 1),
                    ),
                },
                'media': {
                    'help': "Write a stored message's archived image, voice, video or file",
                    'options': (
                        (('-O', '--output-file'), 'file', "Write to FILE, or into DIR under the file's own name ('-': stdout)", False),
                        (('--force',), None, 'Replace an existing FILE', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('msgid', 'text', 1),
                    ),
                },
                'search': {
                    'help': 'Find stored messages containing TEXT (Chinese or Latin), newest first',
                    'options': (
                        (('--account',), 'open_kfid', "Only this account's messages", False),
                        (('--customer',), 'external_userid', "Only this customer's messages", False),
                        (('--since',), 'text', 'Messages sent at or after WHEN', False),
                        (('--until',), 'text', 'Messages sent before WHEN', False),
                        (('--limit',), 'text', 'At most N matches, newest first (default 100)', False),
                        (('--all',), None, 'Every match, however many', False),
                        (('--output', '-o'), 'format', 'Output format: table, tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns of -o tsv and tables, comma-separated, in this order: time, open_kfid,…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('text', 'text', 1),
                    ),
                },
                'sync': {
                    'help': 'Pull messages and events with sync_msg into the store, writing out each new one…',
                    'options': (
                        (('--token',), 'text', 'Token from the latest kf_msg_or_event callback (valid 10 minutes); without one…', False),
                        (('--cursor',), 'text', 'Pull from this cursor instead of the saved one', False),
                        (('--limit',), 'text', 'Messages per request, 1-1000', False),
                        (('--all',), None, 'Pull from the earliest message WeCom keeps (3 days) instead of the saved cursor…', False),
                        (('--follow', '-f'), None, 'Keep polling for new messages until interrupted', False),
                        (('--interval',), 'text', 'Seconds between polls with --follow (backs off up to 60 s while idle, rate limi…', False),
                        (('--tokens-from',), 'file', 'Read `kfcli callback serve` lines from FILE or - and pull right away with each…', False),
                        (('--voice-format',), (('amr', ''), ('silk', '')), 'amr (default) or silk', False),
                        (('--no-save',), None, 'Leave the store alone: read from --cursor (or the start) and write everything r…', False),
                        (('--no-media',), None, 'Do not fetch media into the archive now (they stay due: a later msg sync or `kf…', False),
                        (('--output', '-o'), 'format', 'Output format: table, tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns of -o tsv and tables, comma-separated, in this order: time, open_kfid,…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
                'history': {
                    'help': 'Messages from the store, oldest first: a conversation, or JSON lines',
                    'options': (
                        (('--customer',), 'external_userid', "Only this customer's messages", False),
                        (('--since',), 'text', 'Messages sent at or after WHEN', False),
                        (('--until',), 'text', 'Messages sent before WHEN', False),
                        (('--limit',), 'text', 'At most N messages: the newest N (still oldest first); with --consumer, N per r…', False),
                        (('--follow', '-f'), None, 'Keep writing messages as they are stored, until interrupted', False),
                        (('--consumer',), 'text', 'Resume after the last message this named consumer wrote, and record what it wri…', False),
                        (('--interval',), 'text', 'Seconds between looks at the store with --follow', False),
                        (('--grep',), 'text', 'Only messages containing TEXT, as `msg search` finds them (substring, any case)', False),
                        (('--ack',), 'text', 'With --consumer: resume from the oldest customer message (of the last 48 h) tha…', False),
                        (('--all-accounts',), None, 'Every account of the corp (the default without OPEN_KFID), also those that appe…', False),
                        (('--output', '-o'), 'format', 'Output format: table, tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns of -o tsv and tables, comma-separated, in this order: time, open_kfid,…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
            },
        },
        'store': {
            'help': 'Inspect the message store that `msg sync` and the receiver fill',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'status': {
                    'help': 'Show per account the messages held, their time range, cursor and last pull',
                    'options': (
                        (('--account',), 'open_kfid', 'Only this account (open_kfid)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'media': {
                    'help': 'Count the archived media, and fetch what is missing with --retry',
                    'options': (
                        (('--account',), 'open_kfid', 'Only this account (open_kfid)', False),
                        (('--retry',), None, 'Fetch every pending or failed media now', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'reset-cursor': {
                    'help': "Forget an account's cursor: its next pull starts from the oldest message kept",
                    'options': (
                        (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
                'prune': {
                    'help': 'Remove messages older than a date (or than retention_days) from the store',
                    'options': (
                        (('--before',), 'text', 'Remove messages sent before DATE (default: retention_days ago)', False),
                        (('--dry-run',), None, 'Count what would be removed; remove nothing', False),
                        (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'backup': {
                    'help': 'Copy the store (and its media) to a new store file, while it is in use',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('dest', 'text', 1),
                    ),
                },
                'restore': {
                    'help': "Replace the store's contents with a backup",
                    'options': (
                        (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('src', 'text', 1),
                    ),
                },
                'migrate': {
                    'help': "Upgrade the store's schema to this kfcli's (automatic otherwise)",
                    'options': (
                        (('--dry-run',), None, 'Say what would change; change nothing', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
            },
        },
        'customer': {
            'help': 'Look up customers',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'get': {
                    'help': "Show customers' nicknames, gender, unionid and how they entered the session",
                    'options': (
                        (('--with-context',), None, 'Include the last enter-session context (within 48 h)', False),
                        (('--from',), 'file', "Also read ids from FILE, one per line ('-' for stdin)", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('external_userids', 'external_userid', -1),
                    ),
                },
            },
        },
        'upgrade': {
            'help': 'Upgrade service: dedicated members and customer groups',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'config': {
                    'help': 'Show which members and groups are configured in 微信客服 → 升级服务',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'member': {
                    'help': 'Recommend a dedicated member to the customer (type 1)',
                    'options': (
                        (('--userid',), 'text', 'The dedicated member', False),
                        (('--wording',), 'text', 'Recommendation text shown to the customer', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('external_userid', 'external_userid', 1),
                    ),
                },
                'group': {
                    'help': 'Recommend a customer group to the customer (type 2)',
                    'options': (
                        (('--chat-id',), 'text', 'The customer group chat', False),
                        (('--wording',), 'text', 'Recommendation text shown to the customer', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('external_userid', 'external_userid', 1),
                    ),
                },
                'cancel': {
                    'help': 'Withdraw the recommendation',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('external_userid', 'external_userid', 1),
                    ),
                },
            },
        },
        'corp': {
            'help': 'Corp qualification',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'qualification': {
                    'help': 'Whether a WeChat Channels account is bound, and what that means for the quota',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
            },
        },
        'stats': {
            'help': 'Daily statistics of the last 180 days (longer ranges in 31-day calls)',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'corp': {
                    'help': 'Sessions, customers, messages and assistant figures of an account, per day',
                    'options': (
                        (('--since',), 'text', 'First day: a date (2026-11-01, China time), a duration ago (7d, 2w) or unix sec…', False),
                        (('--until',), 'text', 'Last day, in the same forms (default: yesterday, the latest with data)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
                'servicer': {
                    'help': 'Reply rate, first-reply time and satisfaction of servicers, per day',
                    'options': (
                        (('--since',), 'text', 'First day: a date (2026-11-01, China time), a duration ago (7d, 2w) or unix sec…', False),
                        (('--until',), 'text', 'Last day, in the same forms (default: yesterday, the latest with data)', False),
                        (('--servicer',), 'text', "One servicer's userid (default: the account's totals)", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
            },
        },
        'knowledge': {
            'help': 'Knowledge base: groups and intents (self-built apps only)',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'group': {
                    'help': 'Knowledge groups',
                    'options': (
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'commands': {
                        'list': {
                            'help': 'List knowledge groups (the default group is marked)',
                            'options': (
                                (('--all',), None, 'Every item (default: the first --limit)', False),
                                (('--limit',), 'text', 'Items to show, 1-1000 (default 500; not with --all)', False),
                                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                                (('--json',), None, 'Short for --output json', False),
                                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                                (('--help', '-h'), None, 'Show help and exit', False),
                            ),
                        },
                        'add': {
                            'help': 'Create a group; prints its group_id',
                            'options': (
                                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                                (('--json',), None, 'Short for --output json', False),
                                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                                (('--help', '-h'), None, 'Show help and exit', False),
                            ),
                            'args': (
                                ('name', 'text', 1),
                            ),
                        },
                        'rename': {
                            'help': 'Rename a group (not the default group)',
                            'options': (
                                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                                (('--json',), None, 'Short for --output json', False),
                                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                                (('--help', '-h'), None, 'Show help and exit', False),
                            ),
                            'args': (
                                ('group_id', 'text', 1),
                                ('name', 'text', 1),
                            ),
                        },
                        'delete': {
                            'help': 'Delete a group and its intents (not the default group)',
                            'options': (
                                (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                                (('--json',), None, 'Short for --output json', False),
                                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                                (('--help', '-h'), None, 'Show help and exit', False),
                            ),
                            'args': (
                                ('group_id', 'text', 1),
                            ),
                        },
                    },
                },
                'intent': {
                    'help': 'Intents: a question, similar questions and one answer',
                    'options': (
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'commands': {
                        'list': {
                            'help': 'List intents with their question and answer',
                            'options': (
                                (('--group',), 'text', 'Only this group', False),
                                (('--intent',), 'text', 'Only this intent', False),
                                (('--all',), None, 'Every item (default: the first --limit)', False),
                                (('--limit',), 'text', 'Items to show, 1-1000 (default 500; not with --all)', False),
                                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                                (('--json',), None, 'Short for --output json', False),
                                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                                (('--help', '-h'), None, 'Show help and exit', False),
                            ),
                        },
                        'add': {
                            'help': 'Add an intent to a group',
                            'options': (
                                (('--group',), 'text', 'The group', False),
                                (('--question',), 'text', 'The question', False),
                                (('--answer',), 'text', 'The answer text', False),
                                (('--similar',), 'text', 'A similar question (repeatable; replaces all of them on update)', True),
                                (('--attachment',), '@file', 'Attachment JSON, e.g. {"msgtype":"link","link":{…}} or @FILE (repeatable, up to…', True),
                                (('--image',), 'file', 'Image file to attach (uploaded; repeatable)', True),
                                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                                (('--json',), None, 'Short for --output json', False),
                                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                                (('--help', '-h'), None, 'Show help and exit', False),
                            ),
                        },
                        'update': {
                            'help': 'Replace the question, the similar questions or the answer of an intent',
                            'options': (
                                (('--question',), 'text', 'New question', False),
                                (('--answer',), 'text', 'New answer text', False),
                                (('--similar',), 'text', 'A similar question (repeatable; replaces all of them on update)', True),
                                (('--attachment',), '@file', 'Attachment JSON, e.g. {"msgtype":"link","link":{…}} or @FILE (repeatable, up to…', True),
                                (('--image',), 'file', 'Image file to attach (uploaded; repeatable)', True),
                                (('--keep-attachments',), None, "Keep the answer's current attachments with the new --answer", False),
                                (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                                (('--json',), None, 'Short for --output json', False),
                                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                                (('--help', '-h'), None, 'Show help and exit', False),
                            ),
                            'args': (
                                ('intent_id', 'text', 1),
                            ),
                        },
                        'delete': {
                            'help': 'Delete an intent',
                            'options': (
                                (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                                (('--json',), None, 'Short for --output json', False),
                                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                                (('--help', '-h'), None, 'Show help and exit', False),
                            ),
                            'args': (
                                ('intent_id', 'text', 1),
                            ),
                        },
                    },
                },
            },
        },
        'media': {
            'help': 'Upload and download temporary media',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'upload': {
                    'help': 'Upload a file as temporary media and print its media_id',
                    'options': (
                        (('--type',), (('image', ''), ('voice', ''), ('video', ''), ('file', '')), "image, voice, video or file (default: from the file's content)", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('file', 'file', 1),
                    ),
                },
                'get': {
                    'help': 'Download temporary media (valid 3 days after upload)',
                    'options': (
                        (('-O', '--output-file'), 'file', "Write to FILE, or into DIR under the file's own name ('-': stdout)", False),
                        (('--force',), None, 'Overwrite an existing file', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('media_id', 'text', 1),
                    ),
                },
            },
        },
        'api': {
            'help': 'Call any WeCom API path with the access token added; prints the JSON response',
            'options': (
                (('-f', '--field'), 'text', 'key=value as a string (query parameter for GET, body field for POST; repeatable)', True),
                (('-F', '--typed-field'), 'text', 'key=value as JSON when it is JSON (limit=10, flag=true), else as a string, as g…', True),
                (('--input',), 'file', 'Request body: a JSON FILE or - for stdin', False),
                (('-O', '--output-file'), 'file', "Write the answer to FILE ('-' for stdout): needed for binary answers such as /c…", False),
                (('--force',), None, 'Overwrite an existing -O file', False),
                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                (('--json',), None, 'Short for --output json', False),
                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'args': (
                ('method', (('GET', ''), ('POST', '')), 1),
                ('path', 'text', 1),
            ),
        },
        'callback-verify': {
            'help': 'Verify, decrypt and encrypt WeCom callbacks (no corp secret needed)',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'url': {
                    'help': 'Verify a URL-verification request (GET) and print the decrypted echostr',
                    'options': (
                        (('--msg-signature',), 'text', 'The msg_signature query parameter (not `signature`)', False),
                        (('--timestamp',), 'text', 'The timestamp query parameter', False),
                        (('--nonce',), 'text', 'The nonce query parameter', False),
                        (('--echostr',), 'text', 'The echostr query parameter', False),
                        (('--raw',), None, 'Write exactly the decrypted bytes (no newline added)', False),
                        (('--corp-id',), 'text', "Receive id: the CorpID for KF; '' for an empty one", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'decrypt': {
                    'help': 'Verify and decrypt a callback POST body and print the message inside',
                    'options': (
                        (('--msg-signature',), 'text', 'The msg_signature query parameter (not `signature`)', False),
                        (('--timestamp',), 'text', 'The timestamp query parameter', False),
                        (('--nonce',), 'text', 'The nonce query parameter', False),
                        (('--encrypt',), 'text', 'The bare Encrypt value instead of a body', False),
                        (('--raw',), None, 'Write exactly the decrypted bytes (no newline added)', False),
                        (('--corp-id',), 'text', "Receive id: the CorpID for KF; '' for an empty one", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('body_file', 'file', 1),
                    ),
                },
                'encrypt': {
                    'help': 'Encrypt and sign a message into a callback POST, for testing a receiver',
                    'options': (
                        (('--timestamp',), 'text', 'Unix seconds', False),
                        (('--nonce',), 'text', '1-64 characters [A-Za-z0-9_-]', False),
                        (('--raw',), None, 'Write exactly the body bytes (no newline added)', False),
                        (('--corp-id',), 'text', "Receive id: the CorpID for KF; '' for an empty one", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('message_file', 'file', 1),
                    ),
                },
            },
        },
        'callback': {
            'help': 'Receive WeCom callbacks (kf_msg_or_event) and stream them as JSON lines',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'serve': {
                    'help': 'Run a callback receiver: answer WeCom, print each callback as a JSON line',
                    'options': (
                        (('--host',), 'text', 'Address to listen on', False),
                        (('--port',), 'text', 'Port to listen on; 0 picks a free one (the URL is printed on stderr)', False),
                        (('--sync',), None, 'Also pull the announced messages with sync_msg into the message store and emit…', False),
                        (('--open-kfid',), 'open_kfid', 'With --sync, pull only for this account (repeatable)', True),
                        (('--history',), None, 'With --sync, also emit older messages on the first pull of an account the store…', False),
                        (('--no-media',), None, "With --sync, do not fetch the media of new messages into the store's archive (`…", False),
                        (('--no-emit',), None, 'With --sync, write nothing to stdout: consumers read the store (`kfcli msg hist…', False),
                        (('--max-skew',), 'text', 'Refuse callbacks whose timestamp is further than this from now (replays); 0 tur…', False),
                        (('--safety-pull',), 'text', 'With --sync, pull an account no callback announced for this long; 0: never', False),
                        (('--trusted-proxy',), 'text', 'A proxy whose X-Forwarded-For names the client in the log (repeatable)', True),
                        (('--log-format',), 'text', 'Log lines on stderr as text or JSON objects', False),
                        (('--log-level',), 'text', 'debug, info, warning or error', False),
                        (('--corp-id',), 'text', 'Receive id: the CorpID for KF', False),
                        (('--route',), 'text', "Serve this profile's callbacks (its corp, secret, Token and key) on PATH; repea…", True),
                        (('--access-log',), None, 'Log every request on stderr (probes excepted)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
            },
        },
        'sandbox': {
            'help': 'The local WeCom KF simulator: serve it, make customers and servicers act, injec…',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'serve': {
                    'help': 'Serve the simulator in the foreground until interrupted',
                    'options': (
                        (('--host',), 'text', 'Address to listen on', False),
                        (('--port',), 'text', 'Port (0 picks a free one)', False),
                        (('--db',), 'file', 'SQLite file for the state (default: the one --sandbox uses)', False),
                        (('--token-ttl',), 'text', 'Seconds an access token lives', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'say': {
                    'help': 'Make a simulated customer send a text, image, voice, video or file message',
                    'options': (
                        (('--image',), 'file', 'Send this JPG or PNG file as an image message', False),
                        (('--voice',), 'file', 'Send this AMR file as a voice message', False),
                        (('--video',), 'file', 'Send this MP4 file as a video message', False),
                        (('--file',), 'file', 'Send this file as a file message', False),
                        (('--customer', '--external-userid'), 'external_userid', "The customer's external_userid (default: a new customer)", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('text', 'text', 1),
                    ),
                },
                'clock': {
                    'help': "Show the simulator's clock, or move it forward (to let tokens, windows, media e…",
                    'options': (
                        (('--advance',), 'text', 'Move the clock forward: 3d, 72h, 90m, 1d12h or seconds', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'seed': {
                    'help': 'Add many customer messages at once (for trying `msg sync`)',
                    'options': (
                        (('--count',), 'text', 'How many customer messages', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
                'enter': {
                    'help': "Make a simulated customer enter an account's chat from a link (welcome_code eve…",
                    'options': (
                        (('--external-userid',), 'external_userid', 'The customer (default: a new one)', False),
                        (('--scene',), 'text', "The link's scene: up to 32 bytes of [0-9a-zA-Z_-]", False),
                        (('--scene-param',), 'text', "The link's scene_param (up to 128 bytes)", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                    ),
                },
                'servicer-say': {
                    'help': 'Make a servicer send a text message from the WeCom app (takes the session)',
                    'options': (
                        (('--servicer',), 'text', "The servicer's userid", False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('external_userid', 'external_userid', 1),
                        ('text', 'text', 1),
                    ),
                },
                'servicer-status': {
                    'help': 'Set a servicer receiving, stopped or suspended, as if from the WeCom app',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('open_kfid', 'open_kfid', 1),
                        ('userid', 'text', 1),
                        ('status', 'text', 1),
                    ),
                },
                'corp': {
                    'help': 'Change facts about the simulated corp (a bound WeChat Channels account)',
                    'options': (
                        (('--wechat-channels-binding', '--no-wechat-channels-binding'), None, 'Whether a WeChat Channels account is bound to the corp', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'callback': {
                    'help': 'Send encrypted kf_msg_or_event callbacks to URL when new messages arrive',
                    'options': (
                        (('--configured-keys',), None, 'Sign with the configured Token and EncodingAESKey (KFCLI_TOKEN / KFCLI_AES_KEY…', False),
                        (('--off',), None, 'Stop sending callbacks', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('url', 'text', 1),
                    ),
                },
                'fault': {
                    'help': 'Make the next matching requests fail in a chosen way',
                    'options': (
                        (('--errcode',), 'text', 'For errcode faults', False),
                        (('--status',), 'text', 'For http_status faults', False),
                        (('--seconds',), 'text', 'For delay faults', False),
                        (('--path',), 'text', 'API path (default: any)', False),
                        (('--times',), 'text', 'How many requests fail', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('kind', (('errcode', ''), ('http_status', ''), ('disconnect', ''), ('delay', ''), ('empty_page', ''), ('expire_tokens', '')), 1),
                    ),
                },
                'stats': {
                    'help': 'Requests the simulator has served, per API path',
                    'options': (
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
                'reset': {
                    'help': "Delete the embedded simulator's state (accounts, messages, credentials)",
                    'options': (
                        (('--yes', '-y'), None, 'Do not ask for confirmation (needed in scripts)', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                },
            },
        },
        'doctor': {
            'help': 'Check configuration, file permissions, reachability, token fetch and callback s…',
            'options': (
                (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                (('--json',), None, 'Short for --output json', False),
                (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
        },
        'completion': {
            'help': 'Shell completion: install the TAB-completion script, or print it',
            'options': (
                (('--help', '-h'), None, 'Show help and exit', False),
            ),
            'commands': {
                'install': {
                    'help': 'Install TAB completion for bash, zsh or fish where the shell finds it',
                    'options': (
                        (('--force',), None, 'Replace a file kfcli did not write', False),
                        (('--output', '-o'), 'format', 'Output format: table, wide (a table with every column), tsv, json or jsonl', False),
                        (('--json',), None, 'Short for --output json', False),
                        (('--columns',), 'text', 'Columns to show, comma-separated, in this order (table and tsv; JSON keeps ever…', False),
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('shell', (('bash', ''), ('zsh', ''), ('fish', '')), 1),
                    ),
                },
                'show': {
                    'help': 'Print the TAB-completion script for bash, zsh or fish',
                    'options': (
                        (('--help', '-h'), None, 'Show help and exit', False),
                    ),
                    'args': (
                        ('shell', (('bash', ''), ('zsh', ''), ('fish', '')), 1),
                    ),
                },
            },
        },
    },
}
