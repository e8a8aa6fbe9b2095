# The host's own network: one VPC, one public subnet, an internet gateway
# and a route table. SSH is reachable only from var.ssh_allowed_cidrs.

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only names[0] is used, for the one subnet, and the subnet ignores later changes of its zone (lifecycle below), so a newly added zone can never move or replace the existing host.
  state = "available"
}

resource "aws_vpc" "main" {
  #checkov:skip=CKV2_AWS_11:Flow logs need a log destination with its own retention and KMS key; one ingestion host does not justify it. Enable in the account baseline instead.
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name = "${var.project}-vpc"
  }
}

# Take every rule away from the VPC's default security group so nothing can
# be attached to it by accident (CKV2_AWS_12).
resource "aws_default_security_group" "default" {
  vpc_id = aws_vpc.main.id

  tags = {
    Name = "${var.project}-default-deny"
  }
}

resource "aws_subnet" "public" {
  #checkov:skip=CKV_AWS_130:This subnet is public by design and holds only the ingestion host, which must be reachable over SSH from ssh_allowed_cidrs (never 0.0.0.0/0).
  vpc_id                  = aws_vpc.main.id
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, 1)
  availability_zone       = data.aws_availability_zones.available.names[0]
  map_public_ip_on_launch = true

  tags = {
    Name = "${var.project}-public"
  }

  lifecycle {
    ignore_changes = [availability_zone]
  }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id

  tags = {
    Name = "${var.project}-igw"
  }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }

  tags = {
    Name = "${var.project}-public"
  }
}

resource "aws_route_table_association" "public" {
  subnet_id      = aws_subnet.public.id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "host" {
  name        = "${var.project}-host"
  description = "openpay ingestion host: SSH from the allowlist, HTTP(S) out"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name = "${var.project}-host"
  }
}

# One rule per allowed CIDR, so `openpay doctor` (net.ssh-allowlist) and the
# plan risk gate see each source on its own.
resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.ssh_allowed_cidrs)

  security_group_id = aws_security_group.host.id
  description       = "SSH from allowlisted ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

# Egress is HTTPS and HTTP only: git, dnf, Docker registries, the CMS
# source and S3 all speak HTTPS (dnf mirrors may redirect to HTTP). DNS and
# NTP go to the VPC resolver and the link-local time service, which
# security groups do not filter.
resource "aws_vpc_security_group_egress_rule" "web" {
  for_each = toset(["80", "443"])

  security_group_id = aws_security_group.host.id
  description       = "Outbound TCP ${each.value} for packages, git, the CMS source and S3"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  cidr_ipv4         = "0.0.0.0/0"
}
