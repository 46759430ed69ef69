CREATE TABLE "audit_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"kind" text NOT NULL,
	"principal" text NOT NULL,
	"session_id" text,
	"channel" text NOT NULL,
	"server" text,
	"target" text NOT NULL,
	"arguments" jsonb,
	"status" text NOT NULL,
	"error" text,
	"duration_ms" integer
);
--> statement-breakpoint
CREATE TABLE "registered_servers" (
	"name" text PRIMARY KEY NOT NULL,
	"definition" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "audit_events_at_idx" ON "audit_events" USING btree ("at");--> statement-breakpoint
CREATE INDEX "audit_events_principal_idx" ON "audit_events" USING btree ("principal","at");--> statement-breakpoint
CREATE INDEX "audit_events_server_idx" ON "audit_events" USING btree ("server","at");