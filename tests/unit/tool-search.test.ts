import type { Tool } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import { buildToolCatalog, type UpstreamTools } from '../../src/catalog/tool-catalog.js';
import { ToolSearchIndex } from '../../src/catalog/tool-search.js';

/** A catalog of 25 services × 21 tools = 525 tools, named and described the way real MCP servers do. */
const SERVICES: Record<string, { noun: string; things: string[] }> = {
  github: { noun: 'GitHub', things: ['issue', 'pull_request', 'repository', 'branch', 'release', 'workflow', 'comment'] },
  gitlab: { noun: 'GitLab', things: ['merge_request', 'project', 'pipeline', 'issue', 'snippet', 'runner', 'tag'] },
  jira: { noun: 'Jira', things: ['ticket', 'sprint', 'board', 'epic', 'worklog', 'component', 'version'] },
  slack: { noun: 'Slack', things: ['message', 'channel', 'reaction', 'reminder', 'user_group', 'bookmark', 'emoji'] },
  gmail: { noun: 'Gmail', things: ['email', 'draft', 'label', 'thread', 'filter', 'attachment', 'signature'] },
  calendar: { noun: 'Google Calendar', things: ['event', 'calendar', 'attendee', 'reminder_rule', 'availability', 'room', 'invitation'] },
  drive: { noun: 'Google Drive', things: ['file', 'folder', 'permission', 'revision', 'shortcut', 'shared_drive', 'export'] },
  postgres: { noun: 'PostgreSQL', things: ['table', 'query', 'index', 'schema', 'role', 'extension', 'vacuum_job'] },
  s3: { noun: 'Amazon S3', things: ['bucket', 'object', 'presigned_url', 'lifecycle_rule', 'bucket_policy', 'multipart_upload', 'inventory'] },
  stripe: { noun: 'Stripe', things: ['payment', 'customer', 'invoice', 'subscription', 'refund', 'coupon', 'payout'] },
  notion: { noun: 'Notion', things: ['page', 'database', 'block', 'property', 'workspace_member', 'template', 'view'] },
  linear: { noun: 'Linear', things: ['linear_issue', 'cycle', 'team', 'roadmap', 'label_set', 'triage_rule', 'initiative'] },
  k8s: { noun: 'Kubernetes', things: ['pod', 'deployment', 'service', 'namespace', 'config_map', 'secret', 'ingress'] },
  docker: { noun: 'Docker', things: ['container', 'image', 'volume', 'network', 'compose_stack', 'registry_login', 'build'] },
  weather: { noun: 'weather service', things: ['forecast', 'alert', 'radar_map', 'air_quality', 'station', 'historical_record', 'uv_index'] },
  maps: { noun: 'maps service', things: ['route', 'place', 'geocode', 'distance_matrix', 'elevation', 'timezone', 'street_view'] },
  twilio: { noun: 'Twilio', things: ['sms', 'call', 'phone_number', 'conversation', 'verification', 'fax', 'recording'] },
  zendesk: { noun: 'Zendesk', things: ['support_ticket', 'macro', 'organization', 'satisfaction_rating', 'article', 'trigger', 'sla_policy'] },
  hubspot: { noun: 'HubSpot', things: ['contact', 'deal', 'company', 'marketing_email', 'form', 'pipeline_stage', 'note'] },
  sentry: { noun: 'Sentry', things: ['error_event', 'alert_rule', 'release_health', 'project_key', 'team_member', 'crash_report', 'trace'] },
  spotify: { noun: 'Spotify', things: ['playlist', 'track', 'album', 'artist', 'podcast_episode', 'queue', 'device'] },
  youtube: { noun: 'YouTube', things: ['video', 'caption', 'live_broadcast', 'channel_section', 'video_comment', 'subscription_list', 'thumbnail'] },
  figma: { noun: 'Figma', things: ['design_file', 'frame', 'component_set', 'design_comment', 'style', 'prototype', 'variable'] },
  redis: { noun: 'Redis', things: ['key', 'stream', 'hash', 'sorted_set', 'pubsub_channel', 'lua_script', 'ttl'] },
  filesystem: { noun: 'local filesystem', things: ['text_file', 'directory', 'symlink', 'file_metadata', 'archive', 'file_search', 'checksum'] },
};
const VERBS = ['create', 'list', 'delete'] as const;

function syntheticCatalog(): UpstreamTools[] {
  return Object.entries(SERVICES).map(([server, { noun, things }]) => ({
    server,
    prefix: server,
    separator: '__',
    tools: things.flatMap((thing) =>
      VERBS.map((verb): Tool => {
        const words = thing.replace(/_/g, ' ');
        const description = {
          create: `Create a new ${words} in ${noun}.`,
          list: `List ${words}s in ${noun}, with optional filters and paging.`,
          delete: `Permanently delete a ${words} from ${noun}.`,
        }[verb];
        return {
          name: `${verb}_${thing}`,
          description,
          inputSchema: { type: 'object', properties: { [`${thing}_id`]: { type: 'string', description: `The ${words} id` }, limit: { type: 'number' } } },
        };
      }),
    ),
  }));
}

describe('tool search', () => {
  const catalog = buildToolCatalog(syntheticCatalog(), { broadcasts: false });
  const index = new ToolSearchIndex(catalog.upstreamTools);

  it('indexes the whole synthetic catalog', () => {
    expect(catalog.upstreamTools.length).toBe(525);
  });

  it.each([
    ['create a github issue', 'github__create_issue'],
    ['open a new pull request on GitHub', 'github__create_pull_request'],
    ['send an sms with twilio', 'twilio__create_sms'],
    ['list kubernetes pods', 'k8s__list_pod'],
    ['delete an S3 bucket', 's3__delete_bucket'],
    ['refund a stripe payment', 'stripe__create_refund'],
    ['show me the weather forecast', 'weather__list_forecast'],
    ['remove a docker container', 'docker__delete_container'],
    ['new playlist on spotify', 'spotify__create_playlist'],
    ['merge request gitlab create', 'gitlab__create_merge_request'],
    ['list jira sprints', 'jira__list_sprint'],
    ['createGithubIssue', 'github__create_issue'],
    ['geocode an address with maps', /^maps__\w+_geocode$/],
    ['edit a notion page', /^notion__\w+_page$/],
    ['list redis sorted sets', 'redis__list_sorted_set'],
  ] as [string, string | RegExp][])('"%s" finds %s first', (query, expected) => {
    const hits = index.search(query, 5);
    if (typeof expected === 'string') expect(hits[0]?.name).toBe(expected);
    else expect(hits[0]?.name).toMatch(expected);
  });

  it('returns schemas and respects the limit', () => {
    const hits = index.search('slack', 3);
    expect(hits).toHaveLength(3);
    for (const hit of hits) {
      expect(hit.name.startsWith('slack__')).toBe(true);
      expect(hit.tool.inputSchema.type).toBe('object');
    }
  });

  it('returns nothing for a query that matches nothing', () => {
    expect(index.search('xyzzy plugh', 5)).toEqual([]);
  });
});
