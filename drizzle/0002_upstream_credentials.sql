CREATE TABLE "upstream_credentials" (
	"kind" text NOT NULL,
	"owner" text NOT NULL,
	"target" text NOT NULL,
	"secret" text,
	"key_id" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"expires_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "upstream_credentials_kind_owner_target_pk" PRIMARY KEY("kind","owner","target")
);
